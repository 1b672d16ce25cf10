"""OCSF 1.8.0 ids and captions used by the mapping (a small, checked copy of the official schema).

Kept as literals so mapping needs no schema download at import time; ``tests/test_ocsf_validate``
checks every caption here against the official export bundled in ``ocsf-json-schema``.
"""

from __future__ import annotations

OCSF_VERSION = "1.8.0"

# class_uid -> (class_name, schema name, category_uid)
CLASSES = {
    0: ("Base Event", "base_event", 0),
    4002: ("HTTP Activity", "http_activity", 4),
    6002: ("Application Lifecycle", "application_lifecycle", 6),
    6003: ("API Activity", "api_activity", 6),
    6008: ("Application Error", "application_error", 6),
}
CATEGORIES = {0: "Uncategorized", 4: "Network Activity", 6: "Application Activity"}

# class_uid -> {activity_id: activity_name}
ACTIVITIES = {
    0: {0: "Unknown", 99: "Other"},
    4002: {0: "Unknown", 1: "Connect", 2: "Delete", 3: "Get", 4: "Head", 5: "Options", 6: "Post",
           7: "Put", 8: "Trace", 9: "Patch", 99: "Other"},
    6002: {0: "Unknown", 1: "Install", 2: "Remove", 3: "Start", 4: "Stop", 5: "Restart",
           6: "Enable", 7: "Disable", 8: "Update", 99: "Other"},
    6003: {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"},
    6008: {0: "Unknown", 1: "General Error", 2: "Translation Error", 99: "Other"},
}
SEVERITIES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical",
              6: "Fatal", 99: "Other"}
STATUSES = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}

# HTTP method -> HTTP Activity activity_id
HTTP_ACTIVITY = {"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6, "PUT": 7,
                 "TRACE": 8, "PATCH": 9}
# HTTP method / SQL verb -> API Activity activity_id (create/read/update/delete)
API_ACTIVITY = {"POST": 1, "INSERT": 1, "CREATE": 1, "GET": 2, "SELECT": 2, "HEAD": 2, "PUT": 3,
                "PATCH": 3, "UPDATE": 3, "DELETE": 4, "DROP": 4}
# log level (upper case) -> severity_id
LEVEL_SEVERITY = {"TRACE": 1, "DEBUG": 1, "INFO": 1, "NOTICE": 1, "WARN": 2, "WARNING": 2,
                  "ERROR": 4, "ERR": 4, "CRITICAL": 5, "CRIT": 5, "FATAL": 6, "PANIC": 6,
                  "ALERT": 5, "EMERG": 6}
PROFILES = {4002: ["trace"], 6003: ["trace"]}


def type_name(class_uid: int, activity_id: int) -> str:
    return f"{CLASSES[class_uid][0]}: {ACTIVITIES[class_uid][activity_id]}"
