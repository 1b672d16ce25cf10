"""The lab database: tables and the deterministic seed, created idempotently at start.

Both web-api and payment-worker call ``ensure_schema`` (whichever starts first creates the
tables); an advisory lock serialises concurrent starters.
"""

from __future__ import annotations

import random

__all__ = ["N_PRODUCTS", "N_USERS", "ensure_schema", "username", "password_for"]

N_USERS = 500
N_PRODUCTS = 1000
_LOCK_ID = 4_242_001

DDL = """
CREATE TABLE IF NOT EXISTS users (
    id integer PRIMARY KEY, username text UNIQUE NOT NULL, email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS products (
    id integer PRIMARY KEY, name text NOT NULL, category text NOT NULL,
    price_cents integer NOT NULL);
CREATE INDEX IF NOT EXISTS products_name_idx ON products (lower(name));
CREATE TABLE IF NOT EXISTS payments (
    id text PRIMARY KEY, user_id integer NOT NULL, product_id integer NOT NULL,
    quantity integer NOT NULL, amount_cents integer NOT NULL, status text NOT NULL,
    trace_id text, created_at timestamptz NOT NULL DEFAULT now());
"""

ADJECTIVES = ["red", "blue", "quiet", "rapid", "solid", "bright", "compact", "classic", "smart", "eco"]
NOUNS = ["lamp", "chair", "kettle", "backpack", "monitor", "keyboard", "bottle", "jacket", "speaker", "desk"]
CATEGORIES = ["home", "office", "outdoor", "kitchen", "audio"]


def username(i: int) -> str:
    return f"user{i:04d}"


def password_for(name: str) -> str:
    """The lab's (public, fake) credential rule, shared with auth-service's README."""
    return f"pw-{name}"


def ensure_schema(conn, seed: int = 42) -> None:
    rng = random.Random(seed)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(DDL)
        users = [(i, username(i), f"{username(i)}@example.test") for i in range(1, N_USERS + 1)]
        products = [
            (i, f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}", rng.choice(CATEGORIES), rng.randint(199, 49_999))
            for i in range(1, N_PRODUCTS + 1)
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO users (id, username, email) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", users)
            cur.executemany(
                "INSERT INTO products (id, name, category, price_cents) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING", products)
