# obslab otel-collector: the official Collector (contrib) plus busybox's static wget, because the
# official image is distroless (no shell, no HTTP client) and the Compose healthcheck must ask
# the health_check extension on :13133. Build context: appendix-code/config.
ARG OTEL_COLLECTOR_IMAGE=otel/opentelemetry-collector-contrib:0.114.0
FROM busybox:1.37.0-musl AS probe

FROM ${OTEL_COLLECTOR_IMAGE}
COPY --from=probe /bin/busybox /usr/local/bin/busybox
USER 10001:10001
EXPOSE 4317 4318 13133
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=10 \
  CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:13133/"]
