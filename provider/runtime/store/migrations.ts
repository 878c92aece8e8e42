/**
 * Versioned schema migrations, recorded in `schema_migrations`. Both backends share one SQL text per migration; only
 * the column types differ, so the two schemas cannot drift apart.
 */
import type { Database } from "better-sqlite3";
import type { PoolClient } from "pg";

/** The SQL dialects the store speaks. */
export type Dialect = "sqlite" | "postgres";

/** One schema change. An applied migration is never edited: a fix is a new, higher version. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Column types that differ between the dialects. */
interface ColumnTypes {
  json: string;
  time: string;
  /** A key that only grows, so audit ids keep their order even after rows are deleted. */
  serialKey: string;
}

const TYPES: Record<Dialect, ColumnTypes> = {
  // Timestamps are written as Date#toISOString(), a fixed-width form, so SQLite can compare them as text.
  sqlite: { json: "TEXT", time: "TEXT", serialKey: "INTEGER PRIMARY KEY AUTOINCREMENT" },
  postgres: { json: "JSONB", time: "TIMESTAMPTZ", serialKey: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" },
};

const DEFINITIONS: { version: number; name: string; sql: (t: ColumnTypes) => string }[] = [
  {
    version: 1,
    name: "initial schema",
    // Empty names are refused by the database itself: they are always a caller's bug, never data worth keeping.
    sql: (t) => `
      CREATE TABLE resources (
        kind TEXT NOT NULL CHECK (kind <> ''),
        key TEXT NOT NULL CHECK (key <> ''),
        doc ${t.json} NOT NULL,
        revision INTEGER NOT NULL,
        created_at ${t.time} NOT NULL,
        updated_at ${t.time} NOT NULL,
        PRIMARY KEY (kind, key)
      );
      CREATE TABLE nodes (
        name TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
        labels ${t.json} NOT NULL,
        join_method TEXT NOT NULL,
        token TEXT NOT NULL,
        host_public_key TEXT NOT NULL,
        principals ${t.json} NOT NULL,
        joined_at ${t.time} NOT NULL
      );
      CREATE TABLE challenges (
        challenge TEXT NOT NULL PRIMARY KEY,
        method TEXT NOT NULL,
        token TEXT NOT NULL,
        expires_at ${t.time} NOT NULL
      );
      CREATE INDEX challenges_expires_at ON challenges (expires_at);
      CREATE TABLE cert_authorities (
        type TEXT NOT NULL PRIMARY KEY CHECK (type IN ('host', 'user')),
        active ${t.json} NOT NULL,
        previous ${t.json} NOT NULL,
        revision INTEGER NOT NULL
      );
      CREATE TABLE audit_events (
        id ${t.serialKey},
        at ${t.time} NOT NULL,
        type TEXT NOT NULL,
        source TEXT,
        method TEXT,
        token TEXT,
        node TEXT,
        code TEXT,
        reason TEXT
      );
      CREATE TABLE enrollments (
        cloud TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        node_name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        detail ${t.json},
        updated_at ${t.time} NOT NULL,
        PRIMARY KEY (cloud, account, region, instance_id)
      );
    `,
  },
  {
    version: 2,
    name: "enrollments by node name",
    // A join looks up what discovery recorded about the joining node (its region, its discovery group).
    sql: () => `CREATE INDEX enrollments_node_name ON enrollments (node_name);`,
  },
  {
    version: 3,
    name: "audit events by time",
    // The retention timer deletes by age; without the index every prune scans the whole table.
    sql: () => `CREATE INDEX audit_events_at ON audit_events (at);`,
  },
  {
    version: 4,
    name: "discovery status and scope errors",
    // Status lives beside the document, not in it: the runtime writing it never bumps the document's revision nor
    // races a user's apply. Scope errors (a whole account or region failing) feed the tasks list, as enrollment
    // records do for single instances.
    sql: (t) => `
      CREATE TABLE discovery_status (
        name TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
        status ${t.json} NOT NULL,
        updated_at ${t.time} NOT NULL
      );
      CREATE TABLE scope_errors (
        cloud TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        first_seen ${t.time} NOT NULL,
        last_seen ${t.time} NOT NULL,
        PRIMARY KEY (cloud, account, region)
      );
    `,
  },
  {
    version: 5,
    name: "stale nodes",
    // Set when a pass finds the node's instance terminated or gone; cleared when it is back; NULL means active.
    sql: (t) => `ALTER TABLE nodes ADD COLUMN stale_since ${t.time};`,
  },
  {
    version: 6,
    name: "node certificates",
    // Which CA keys each node's credentials come from, so a CA rotation knows which nodes still lack the new key.
    sql: (t) => `
      CREATE TABLE node_certificates (
        node_name TEXT NOT NULL PRIMARY KEY CHECK (node_name <> ''),
        host_ca_key TEXT NOT NULL,
        user_ca_keys ${t.json} NOT NULL,
        issued_at ${t.time} NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: "scope leases and replica heartbeats",
    // Replicas of one discovery group split its scopes through these rows (provider/runtime/scope-leases.ts); a row
    // outlives its expiry until pruned, so a lease just given up still counts as a scope to share.
    sql: (t) => `
      CREATE TABLE scope_leases (
        cloud TEXT NOT NULL CHECK (cloud <> ''),
        discovery_group TEXT NOT NULL CHECK (discovery_group <> ''),
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        holder TEXT NOT NULL CHECK (holder <> ''),
        acquired_at ${t.time} NOT NULL,
        expires_at ${t.time} NOT NULL,
        PRIMARY KEY (cloud, discovery_group, account, region)
      );
      CREATE INDEX scope_leases_group ON scope_leases (discovery_group, expires_at);
      CREATE TABLE discovery_replicas (
        discovery_group TEXT NOT NULL CHECK (discovery_group <> ''),
        runtime_id TEXT NOT NULL CHECK (runtime_id <> ''),
        seen_at ${t.time} NOT NULL,
        expires_at ${t.time} NOT NULL,
        PRIMARY KEY (discovery_group, runtime_id)
      );
    `,
  },
  {
    version: 8,
    name: "discovery status per scope",
    // What each replica's last pass found in each scope of a config (provider/runtime/config-status.ts): the status
    // a user reads sums the rows still fresh, so replicas that split a config's scopes each add theirs.
    sql: (t) => `
      CREATE TABLE discovery_scope_status (
        config TEXT NOT NULL CHECK (config <> ''),
        cloud TEXT NOT NULL CHECK (cloud <> ''),
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        found INTEGER NOT NULL,
        enrolled INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        error TEXT NOT NULL,
        holder TEXT NOT NULL CHECK (holder <> ''),
        position INTEGER NOT NULL,
        last_sync ${t.time} NOT NULL,
        fresh_until ${t.time} NOT NULL,
        PRIMARY KEY (config, cloud, account, region)
      );
    `,
  },
];

/** The migrations of one dialect, in the order they apply. */
export function migrationsFor(dialect: Dialect): Migration[] {
  return DEFINITIONS.map((d) => ({ version: d.version, name: d.name, sql: d.sql(TYPES[dialect]) }));
}

const ledger = (t: ColumnTypes) =>
  `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at ${t.time} NOT NULL)`;

/**
 * Applies the pending migrations to a SQLite database. IMMEDIATE takes the write lock before reading the ledger, so
 * two processes opening one file cannot both decide a version is pending.
 */
export function applySqliteMigrations(db: Database, migrations = migrationsFor("sqlite")): void {
  db.transaction(() => {
    db.exec(ledger(TYPES.sqlite));
    const applied = new Set(db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[]);
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    }
  }).immediate();
}

/**
 * Serialises `migrate()` across replicas sharing one database. Advisory locks are per database, so the constant only
 * has to be unique within this application's own database.
 */
const MIGRATION_LOCK = 7_244_253_218_119_245;

/**
 * Applies the pending migrations to PostgreSQL. Call it inside a transaction on `client`: the advisory lock is held
 * until that transaction ends, so replicas starting together apply each version once, and a failed migration leaves
 * neither its DDL nor its ledger row behind.
 */
export async function applyPostgresMigrations(
  client: PoolClient,
  migrations = migrationsFor("postgres"),
): Promise<void> {
  // Taken before CREATE TABLE IF NOT EXISTS: that statement itself races (duplicate pg_type row) when run concurrently.
  await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
  await client.query(ledger(TYPES.postgres));
  const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
  const applied = new Set(rows.map((r) => r.version));
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    await client.query(m.sql);
    await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
      m.version,
      m.name,
      new Date().toISOString(),
    ]);
  }
}
