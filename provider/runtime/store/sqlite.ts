import type Database from "better-sqlite3";
import { withDriver } from "./drivers";
import { createPrivateFile } from "../file-modes";
import { applySqliteMigrations } from "./migrations";
import * as Rows from "./rows";
import { OPTIONAL_AUDIT_FIELDS, rowMappers } from "./rows";
import { iso, scopeLeaseMethods, sqliteParams } from "./scope-lease-sql";
import { configScopeMethods, statusesOverScopes } from "./config-scope-sql";
import type {
  AuditEvent,
  CertAuthorityRecord,
  ChallengeRecord,
  ConfigScopeStore,
  DiscoveryStatus,
  EnrollmentRecord,
  JoinRecord,
  NodeCertificateRecord,
  NodeRecord,
  ScopeErrorRecord,
  NodeStalenessChanges,
  NodeStalenessUpdate,
  ResourceWrite,
  ScopeLeaseStore,
  Store,
  StoredResource,
} from "./types";
import { RevisionMismatch } from "./types";

type ResourceRow = Rows.ResourceRow<string, string>;
type NodeRow = Rows.NodeRow<string, string>;
type ChallengeRow = Rows.ChallengeRow<string>;
type CaRow = Rows.CaRow<string>;
type AuditRow = Rows.AuditRow<number, string>;
type EnrollmentRow = Rows.EnrollmentRow<string, string>;
type ScopeErrorRow = Rows.ScopeErrorRow<string>;
type NodeCertificateRow = Rows.NodeCertificateRow<string, string>;

// Normalised on write, so `expires_at > ?` compares correctly as text and both backends return the same form.
const { toResource, toNode, toChallenge, toCa, toAudit, toEnrollment, toScopeError, toNodeCertificate } = rowMappers<
  string,
  string,
  number
>({
  json: (v) => JSON.parse(v),
  time: (v) => v,
  id: (v) => v,
});

/** The scope lease and config scope methods, mixed in from scope-lease-sql.ts and config-scope-sql.ts. */
export interface SqliteStore extends ScopeLeaseStore, ConfigScopeStore {}

/**
 * The store on a local SQLite file, for a single replica. better-sqlite3 is synchronous; the async methods only honour
 * the `Store` contract, and a thrown error surfaces as a rejected promise.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  /** Opens (and creates, 0600 in a 0700 directory) the database file; `migrate()` creates the tables. */
  constructor(file: string) {
    // The file holds the SSH CA private keys; made before SQLite opens it, which would create it 0644.
    // The driver is checked on an in-memory database first, so a missing or mis-built one leaves no empty file.
    withDriver<typeof Database, void>("better-sqlite3", (Sqlite) => new Sqlite(":memory:").close());
    if (file !== ":memory:") createPrivateFile(file);
    this.db = withDriver<typeof Database, Database.Database>("better-sqlite3", (Sqlite) => new Sqlite(file));
    // busy_timeout first: switching to WAL itself needs the lock another process may hold.
    this.db.pragma("busy_timeout = 5000");
    // WAL lets the status page and the join service read while the scheduler writes.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("foreign_keys = ON");
    const run = async (text: string, params: string[]) => {
      const { sql, named } = sqliteParams(text, params);
      const s = this.stmt(sql);
      if (s.reader) {
        const rows = s.all(named) as Record<string, unknown>[];
        return { rows, count: rows.length };
      }
      return { rows: [], count: s.run(named).changes };
    };
    const batch = async (statements: { sql: string; params: string[] }[]) =>
      this.write(() => {
        for (const st of statements) {
          const { sql, named } = sqliteParams(st.sql, st.params);
          this.stmt(sql).run(named);
        }
      });
    Object.assign(this, scopeLeaseMethods(run), configScopeMethods(run, batch));
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  /** IMMEDIATE takes the write lock up front: a deferred read-then-write can fail with SQLITE_BUSY past busy_timeout. */
  private write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  async migrate(): Promise<void> {
    applySqliteMigrations(this.db);
  }

  async close(): Promise<void> {
    // Joins waiting for their group's commit get it before the database closes.
    if (this.db.open) this.flushJoins();
    if (this.db.open) this.db.close();
  }

  async putResources(items: ResourceWrite[]): Promise<StoredResource[]> {
    const upsert = this.stmt(
      `INSERT INTO resources (kind, key, doc, revision, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)
       ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, revision = resources.revision + 1,
         updated_at = excluded.updated_at
       RETURNING *`,
    );
    const revision = this.stmt("SELECT revision FROM resources WHERE kind = ? AND key = ?");
    return this.write(() => {
      const now = new Date().toISOString();
      // JSON.stringify runs inside the transaction, so a document that cannot be serialised rolls back the batch;
      // so does a conditional write over another revision (the write lock is held, so the check cannot go stale).
      return items.map((i) => {
        if (i.ifRevision !== undefined) {
          const actual = (revision.get(i.kind, i.key) as { revision: number } | undefined)?.revision ?? 0;
          if (actual !== i.ifRevision) throw new RevisionMismatch(i.kind, i.key, i.ifRevision, actual);
        }
        return toResource(upsert.get(i.kind, i.key, JSON.stringify(i.doc), now, now) as ResourceRow);
      });
    });
  }

  async getResource(kind: string, key: string): Promise<StoredResource | undefined> {
    const row = this.stmt("SELECT * FROM resources WHERE kind = ? AND key = ?").get(kind, key) as
      ResourceRow | undefined;
    return row && toResource(row);
  }

  async listResources(kind?: string): Promise<StoredResource[]> {
    const rows =
      kind === undefined
        ? this.stmt("SELECT * FROM resources ORDER BY kind, key").all()
        : this.stmt("SELECT * FROM resources WHERE kind = ? ORDER BY key").all(kind);
    return (rows as ResourceRow[]).map(toResource);
  }

  async deleteResource(kind: string, key: string, ifRevision?: number): Promise<boolean> {
    const del = this.stmt("DELETE FROM resources WHERE kind = ? AND key = ? AND (? IS NULL OR revision = ?)");
    const delStatus = this.stmt("DELETE FROM discovery_status WHERE name = ?");
    const delScopes = this.stmt("DELETE FROM discovery_scope_status WHERE config = ?");
    return this.write(() => {
      const r = ifRevision ?? null;
      const deleted = del.run(kind, key, r, r).changes > 0;
      if (deleted && kind === "discovery_config") {
        delStatus.run(key);
        delScopes.run(key);
      }
      return deleted;
    });
  }

  async insertNode(node: NodeRecord): Promise<"inserted" | "exists"> {
    return this.write(() => this.addNode(node));
  }

  /**
   * Group commit: the joins recorded in one turn of the event loop (a DescribeInstances answer releases up to a
   * thousand at once) share one transaction, so one durable commit (one WAL fsync) instead of one each. Each join's
   * writes run in a savepoint of their own: one that fails is rolled back alone, all of its writes and none of the
   * others'; and no join is answered before the commit that holds it returns.
   */
  async recordJoin(j: JoinRecord): Promise<"inserted" | "exists"> {
    return new Promise((resolve, reject) => {
      if (this.pendingJoins.push({ j, resolve, reject }) === 1) setImmediate(() => this.flushJoins());
    });
  }

  private pendingJoins: {
    j: JoinRecord;
    resolve: (r: "inserted" | "exists") => void;
    reject: (e: unknown) => void;
  }[] = [];

  private flushJoins(): void {
    const group = this.pendingJoins.splice(0);
    if (!group.length) return;
    const outcomes: ({ ok: "inserted" | "exists" } | { error: unknown })[] = [];
    try {
      this.write(() => {
        for (const { j } of group) {
          // Nested, better-sqlite3 makes this a SAVEPOINT: rolled back alone when it throws.
          const one = this.db.transaction(() => {
            if (this.addNode(j.node) === "exists") return "exists" as const;
            this.setNodeCertificate(j.certificate);
            this.addAudit(j.audit);
            return "inserted" as const;
          });
          try {
            outcomes.push({ ok: one() });
          } catch (error) {
            outcomes.push({ error });
          }
        }
      });
    } catch (error) {
      // The commit itself failed (or the database is closed): nothing of the group is kept.
      for (const g of group) g.reject(error);
      return;
    }
    group.forEach((g, k) => {
      const o = outcomes[k];
      if ("ok" in o) g.resolve(o.ok);
      else g.reject(o.error);
    });
  }

  /** Inserts a node unless one of that name exists; inside a transaction. */
  private addNode(node: NodeRecord): "inserted" | "exists" {
    const changes = this.stmt(
      `INSERT INTO nodes (name, labels, join_method, token, host_public_key, principals, joined_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
    ).run(
      node.name,
      JSON.stringify(node.labels),
      node.joinMethod,
      node.token,
      node.hostPublicKey,
      JSON.stringify(node.principals),
      iso(node.joinedAt),
    ).changes;
    return changes === 1 ? "inserted" : "exists";
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const row = this.stmt("SELECT * FROM nodes WHERE name = ?").get(name) as NodeRow | undefined;
    return row && toNode(row);
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (this.stmt("SELECT * FROM nodes ORDER BY name").all() as NodeRow[]).map(toNode);
  }

  async deleteNode(name: string): Promise<boolean> {
    const del = this.stmt("DELETE FROM nodes WHERE name = ?");
    const delCert = this.stmt("DELETE FROM node_certificates WHERE node_name = ?");
    return this.write(() => {
      delCert.run(name);
      return del.run(name).changes > 0;
    });
  }

  async putNodeCertificate(c: NodeCertificateRecord): Promise<void> {
    this.write(() => this.setNodeCertificate(c));
  }

  /** Inserts or replaces a node's certificate record; inside a transaction. */
  private setNodeCertificate(c: NodeCertificateRecord): void {
    this.stmt(
      `INSERT INTO node_certificates (node_name, host_ca_key, user_ca_keys, issued_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (node_name) DO UPDATE SET host_ca_key = excluded.host_ca_key,
         user_ca_keys = excluded.user_ca_keys, issued_at = excluded.issued_at`,
    ).run(c.node, c.hostCaKey, JSON.stringify(c.userCaKeys), iso(c.issuedAt));
  }

  async getNodeCertificate(node: string): Promise<NodeCertificateRecord | undefined> {
    const row = this.stmt("SELECT * FROM node_certificates WHERE node_name = ?").get(node) as
      NodeCertificateRow | undefined;
    return row && toNodeCertificate(row);
  }

  async listNodeCertificates(): Promise<NodeCertificateRecord[]> {
    const rows = this.stmt("SELECT * FROM node_certificates ORDER BY node_name").all() as NodeCertificateRow[];
    return rows.map(toNodeCertificate);
  }

  async updateNodeStaleness(u: NodeStalenessUpdate): Promise<NodeStalenessChanges> {
    const mark = this.stmt("UPDATE nodes SET stale_since = ? WHERE name = ? AND stale_since IS NULL");
    const unmark = this.stmt("UPDATE nodes SET stale_since = NULL WHERE name = ? AND stale_since IS NOT NULL");
    const remove = this.stmt("DELETE FROM nodes WHERE name = ? AND stale_since IS NOT NULL AND stale_since <= ?");
    return this.write(() => ({
      staled: u.stale.filter((n) => mark.run(iso(u.at), n).changes > 0),
      activated: u.active.filter((n) => unmark.run(n).changes > 0),
      removed: u.remove.filter((n) => remove.run(n, iso(u.staleBefore)).changes > 0),
    }));
  }

  async putChallenge(c: ChallengeRecord): Promise<void> {
    const insert = this.stmt("INSERT INTO challenges (challenge, method, token, expires_at) VALUES (?, ?, ?, ?)");
    this.write(() => insert.run(c.challenge, c.method, c.token, iso(c.expiresAt)));
  }

  async consumeChallenge(challenge: string, now: Date): Promise<ChallengeRecord | undefined> {
    const take = this.stmt("DELETE FROM challenges WHERE challenge = ? AND expires_at > ? RETURNING *");
    const row = this.write(() => take.get(challenge, iso(now)) as ChallengeRow | undefined);
    return row && toChallenge(row);
  }

  async deleteExpiredChallenges(now: Date): Promise<number> {
    const sweep = this.stmt("DELETE FROM challenges WHERE expires_at <= ?");
    return this.write(() => sweep.run(iso(now)).changes);
  }

  async getCertAuthority(type: "host" | "user"): Promise<CertAuthorityRecord | undefined> {
    const row = this.stmt("SELECT * FROM cert_authorities WHERE type = ?").get(type) as CaRow | undefined;
    return row && toCa(row);
  }

  async initCertAuthority(ca: Omit<CertAuthorityRecord, "revision">): Promise<CertAuthorityRecord> {
    const insert = this.stmt(
      "INSERT INTO cert_authorities (type, active, previous, revision) VALUES (?, ?, ?, 1) ON CONFLICT (type) DO NOTHING",
    );
    const select = this.stmt("SELECT * FROM cert_authorities WHERE type = ?");
    return this.write(() => {
      insert.run(ca.type, JSON.stringify(ca.active), JSON.stringify(ca.previous));
      return toCa(select.get(ca.type) as CaRow);
    });
  }

  async updateCertAuthority(ca: CertAuthorityRecord): Promise<boolean> {
    const update = this.stmt(
      "UPDATE cert_authorities SET active = ?, previous = ?, revision = revision + 1 WHERE type = ? AND revision = ?",
    );
    return this.write(
      () => update.run(JSON.stringify(ca.active), JSON.stringify(ca.previous), ca.type, ca.revision).changes === 1,
    );
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    this.write(() => this.addAudit(event));
  }

  /** Appends one audit row; inside a transaction. */
  private addAudit(event: AuditEvent): void {
    this.stmt(
      `INSERT INTO audit_events (at, type, source, method, token, node, code, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(iso(event.at), event.type, ...OPTIONAL_AUDIT_FIELDS.map((f) => event[f] ?? null));
  }

  async listAudit(limit: number): Promise<AuditEvent[]> {
    // SQLite reads a negative LIMIT as "no limit"; clamp so both backends agree.
    const rows = this.stmt("SELECT * FROM audit_events ORDER BY id DESC LIMIT ?").all(Math.max(0, Math.floor(limit)));
    return (rows as AuditRow[]).map(toAudit);
  }

  async pruneAudit(before: Date): Promise<number> {
    const prune = this.stmt("DELETE FROM audit_events WHERE at < ?");
    return this.write(() => prune.run(iso(before)).changes);
  }

  /** Writes one enrollment whole: a reason or detail from an earlier status must not linger on the new one. */
  private putEnrollment(e: EnrollmentRecord): void {
    const detail = e.detail === undefined ? null : JSON.stringify(e.detail);
    this.stmt(
      `INSERT INTO enrollments (cloud, account, region, instance_id, node_name, status, reason, detail, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cloud, account, region, instance_id) DO UPDATE SET node_name = excluded.node_name,
         status = excluded.status, reason = excluded.reason, detail = excluded.detail, updated_at = excluded.updated_at`,
    ).run(e.cloud, e.account, e.region, e.instanceId, e.nodeName, e.status, e.reason ?? null, detail, iso(e.updatedAt));
  }

  async upsertEnrollment(e: EnrollmentRecord): Promise<void> {
    this.write(() => this.putEnrollment(e));
  }

  async claimEnrollment(
    e: EnrollmentRecord,
    isFree: (current: EnrollmentRecord | undefined) => boolean,
  ): Promise<boolean> {
    const read = this.stmt(
      "SELECT * FROM enrollments WHERE cloud = ? AND account = ? AND region = ? AND instance_id = ?",
    );
    return this.write(() => {
      const row = read.get(e.cloud, e.account, e.region, e.instanceId) as EnrollmentRow | undefined;
      if (!isFree(row ? toEnrollment(row) : undefined)) return false;
      this.putEnrollment(e);
      return true;
    });
  }

  async listEnrollments(): Promise<EnrollmentRecord[]> {
    const rows = this.stmt("SELECT * FROM enrollments ORDER BY cloud, account, region, instance_id").all();
    return (rows as EnrollmentRow[]).map(toEnrollment);
  }

  async resourceWatermark(kind: string): Promise<string> {
    const r = this.stmt(
      `SELECT COUNT(*) AS n, MAX(updated_at) AS u, COALESCE(SUM(revision), 0) AS r, MAX(created_at) AS c
       FROM resources WHERE kind = ?`,
    ).get(kind) as { n: number; u: string | null; r: number; c: string | null };
    return `${r.n}|${r.u ?? ""}|${r.r}|${r.c ?? ""}`;
  }

  async putDiscoveryStatus(name: string, status: DiscoveryStatus, at: Date): Promise<void> {
    const upsert = this.stmt(
      `INSERT INTO discovery_status (name, status, updated_at)
       SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM resources WHERE kind = 'discovery_config' AND key = ?)
       ON CONFLICT (name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
    );
    this.write(() => upsert.run(name, JSON.stringify(status), iso(at), name));
  }

  async listDiscoveryStatus(now = new Date()): Promise<Map<string, DiscoveryStatus>> {
    const rows = this.stmt("SELECT name, status FROM discovery_status").all() as { name: string; status: string }[];
    const stored = new Map(rows.map((r) => [r.name, JSON.parse(r.status) as DiscoveryStatus]));
    return statusesOverScopes(stored, await this.listConfigScopes(), now);
  }

  async recordScopeResults(
    results: { cloud: string; account: string; region: string; error?: { code: string; message: string } }[],
    at: Date,
  ): Promise<void> {
    const upsert = this.stmt(
      `INSERT INTO scope_errors (cloud, account, region, code, message, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cloud, account, region) DO UPDATE SET code = excluded.code, message = excluded.message,
         last_seen = excluded.last_seen`,
    );
    const clear = this.stmt("DELETE FROM scope_errors WHERE cloud = ? AND account = ? AND region = ?");
    this.write(() => {
      for (const r of results)
        if (r.error) upsert.run(r.cloud, r.account, r.region, r.error.code, r.error.message, iso(at), iso(at));
        else clear.run(r.cloud, r.account, r.region);
    });
  }

  async listScopeErrors(): Promise<ScopeErrorRecord[]> {
    const rows = this.stmt("SELECT * FROM scope_errors ORDER BY cloud, account, region").all();
    return (rows as ScopeErrorRow[]).map(toScopeError);
  }

  async enrollmentsOfNode(nodeName: string): Promise<EnrollmentRecord[]> {
    const rows = this.stmt("SELECT * FROM enrollments WHERE node_name = ? ORDER BY updated_at DESC").all(nodeName);
    return (rows as EnrollmentRow[]).map(toEnrollment);
  }
}
