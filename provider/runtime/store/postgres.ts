import type { Pool, PoolClient } from "pg";
import { withDriver } from "./drivers";
import { applyPostgresMigrations } from "./migrations";
import * as Rows from "./rows";
import { OPTIONAL_AUDIT_FIELDS, rowMappers } from "./rows";
import { scopeLeaseMethods } from "./scope-lease-sql";
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

type ResourceRow = Rows.ResourceRow<unknown, Date>;
type NodeRow = Rows.NodeRow<unknown, Date>;
type ChallengeRow = Rows.ChallengeRow<Date>;
type CaRow = Rows.CaRow<unknown>;
/** `id` is BIGINT, which pg returns as a string to avoid losing precision. */
type AuditRow = Rows.AuditRow<string, Date>;
type EnrollmentRow = Rows.EnrollmentRow<unknown, Date>;
type ScopeErrorRow = Rows.ScopeErrorRow<Date>;
type NodeCertificateRow = Rows.NodeCertificateRow<unknown, Date>;

// pg turns a JS array parameter into a PostgreSQL array literal, not JSON, so JSONB values are always sent as text.
const json = (v: unknown) => JSON.stringify(v);

const { toResource, toNode, toChallenge, toCa, toAudit, toEnrollment, toScopeError, toNodeCertificate } = rowMappers<
  unknown,
  Date,
  string
>({
  json: (v) => v,
  time: (v) => v.toISOString(),
  id: (v) => Number(v),
});

/** The scope lease and config scope methods, mixed in from scope-lease-sql.ts and config-scope-sql.ts. */
export interface PostgresStore extends ScopeLeaseStore, ConfigScopeStore {}

/** The store on PostgreSQL, shared by several replicas; uniqueness and races are settled by the database. */
export class PostgresStore implements Store {
  private readonly pool: Pool;
  private closed = false;

  /** Creates the connection pool; nothing connects until the first query. */
  constructor(url: string) {
    this.pool = withDriver<typeof import("pg"), Pool>("pg", (pg) => new pg.Pool({ connectionString: url }));
    // An idle client whose server went away emits here; without a listener that would crash the process. The pool
    // drops the client, and the next query reconnects or fails with a proper error.
    this.pool.on("error", () => undefined);
    const run = async (sql: string, params: string[]) => {
      const r = await this.pool.query(sql, params);
      return { rows: r.rows, count: r.rowCount ?? 0 };
    };
    const batch = (statements: { sql: string; params: string[] }[]) =>
      this.tx(async (c) => {
        for (const st of statements) await c.query(st.sql, st.params);
      });
    Object.assign(this, scopeLeaseMethods(run), configScopeMethods(run, batch));
  }

  /** Runs `fn` in BEGIN/COMMIT on one client; any error rolls back everything `fn` wrote. */
  private async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      // A client that cannot even roll back is discarded rather than handed to the next caller mid-transaction.
      await client.query("ROLLBACK").catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async migrate(): Promise<void> {
    await this.tx((c) => applyPostgresMigrations(c));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async putResources(items: ResourceWrite[]): Promise<StoredResource[]> {
    // Rows are locked in one global order, so two batches touching the same keys cannot deadlock each other.
    const order = items
      .map((_, i) => i)
      .sort((a, b) => cmp(items[a].kind, items[b].kind) || cmp(items[a].key, items[b].key));
    return this.tx(async (c) => {
      const now = new Date().toISOString();
      const stored: StoredResource[] = new Array(items.length);
      for (const i of order) {
        const { kind, key, doc, ifRevision } = items[i];
        // A conditional write is one statement whose WHERE is the condition: no row back means another revision.
        const sql =
          ifRevision === undefined
            ? `INSERT INTO resources (kind, key, doc, revision, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)
               ON CONFLICT (kind, key) DO UPDATE SET doc = EXCLUDED.doc, revision = resources.revision + 1,
                 updated_at = EXCLUDED.updated_at
               RETURNING *`
            : ifRevision === 0
              ? `INSERT INTO resources (kind, key, doc, revision, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)
                 ON CONFLICT (kind, key) DO NOTHING RETURNING *`
              : `UPDATE resources SET doc = $3, revision = revision + 1, updated_at = $4
                 WHERE kind = $1 AND key = $2 AND revision = $5 RETURNING *`;
        const params = ifRevision ? [kind, key, json(doc), now, ifRevision] : [kind, key, json(doc), now];
        const { rows } = await c.query<ResourceRow>(sql, params);
        if (!rows[0]) {
          const actual = await c.query<{ revision: number }>(
            "SELECT revision FROM resources WHERE kind = $1 AND key = $2",
            [kind, key],
          );
          throw new RevisionMismatch(kind, key, ifRevision!, Number(actual.rows[0]?.revision ?? 0));
        }
        stored[i] = toResource(rows[0]);
      }
      return stored;
    });
  }

  async getResource(kind: string, key: string): Promise<StoredResource | undefined> {
    const { rows } = await this.pool.query<ResourceRow>("SELECT * FROM resources WHERE kind = $1 AND key = $2", [
      kind,
      key,
    ]);
    return rows[0] && toResource(rows[0]);
  }

  async listResources(kind?: string): Promise<StoredResource[]> {
    // COLLATE "C" sorts bytewise, as SQLite does, so both backends list in the same order.
    const { rows } =
      kind === undefined
        ? await this.pool.query<ResourceRow>(`SELECT * FROM resources ORDER BY kind COLLATE "C", key COLLATE "C"`)
        : await this.pool.query<ResourceRow>(`SELECT * FROM resources WHERE kind = $1 ORDER BY key COLLATE "C"`, [
            kind,
          ]);
    return rows.map(toResource);
  }

  async deleteResource(kind: string, key: string, ifRevision?: number): Promise<boolean> {
    return this.tx(async (c) => {
      const r = await c.query(
        "DELETE FROM resources WHERE kind = $1 AND key = $2 AND ($3::integer IS NULL OR revision = $3)",
        [kind, key, ifRevision ?? null],
      );
      const deleted = (r.rowCount ?? 0) > 0;
      if (deleted && kind === "discovery_config") {
        await c.query("DELETE FROM discovery_status WHERE name = $1", [key]);
        await c.query("DELETE FROM discovery_scope_status WHERE config = $1", [key]);
      }
      return deleted;
    });
  }

  async insertNode(node: NodeRecord): Promise<"inserted" | "exists"> {
    return this.tx((c) => addNode(c, node));
  }

  async recordJoin(j: JoinRecord): Promise<"inserted" | "exists"> {
    return this.tx(async (c) => {
      if ((await addNode(c, j.node)) === "exists") return "exists";
      await setNodeCertificate(c, j.certificate);
      await addAudit(c, j.audit);
      return "inserted";
    });
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const { rows } = await this.pool.query<NodeRow>("SELECT * FROM nodes WHERE name = $1", [name]);
    return rows[0] && toNode(rows[0]);
  }

  async listNodes(): Promise<NodeRecord[]> {
    const { rows } = await this.pool.query<NodeRow>(`SELECT * FROM nodes ORDER BY name COLLATE "C"`);
    return rows.map(toNode);
  }

  async deleteNode(name: string): Promise<boolean> {
    return this.tx(async (c) => {
      await c.query("DELETE FROM node_certificates WHERE node_name = $1", [name]);
      return ((await c.query("DELETE FROM nodes WHERE name = $1", [name])).rowCount ?? 0) > 0;
    });
  }

  async putNodeCertificate(n: NodeCertificateRecord): Promise<void> {
    await this.tx((c) => setNodeCertificate(c, n));
  }

  async getNodeCertificate(node: string): Promise<NodeCertificateRecord | undefined> {
    const { rows } = await this.pool.query<NodeCertificateRow>("SELECT * FROM node_certificates WHERE node_name = $1", [
      node,
    ]);
    return rows[0] && toNodeCertificate(rows[0]);
  }

  async listNodeCertificates(): Promise<NodeCertificateRecord[]> {
    const { rows } = await this.pool.query<NodeCertificateRow>(
      `SELECT * FROM node_certificates ORDER BY node_name COLLATE "C"`,
    );
    return rows.map(toNodeCertificate);
  }

  async updateNodeStaleness(u: NodeStalenessUpdate): Promise<NodeStalenessChanges> {
    return this.tx(async (c) => {
      const each = async (names: string[], sql: string, extra: unknown[]) => {
        const done: string[] = [];
        for (const n of names) if (((await c.query(sql, [n, ...extra])).rowCount ?? 0) > 0) done.push(n);
        return done;
      };
      return {
        staled: await each(u.stale, "UPDATE nodes SET stale_since = $2 WHERE name = $1 AND stale_since IS NULL", [
          u.at,
        ]),
        activated: await each(
          u.active,
          "UPDATE nodes SET stale_since = NULL WHERE name = $1 AND stale_since IS NOT NULL",
          [],
        ),
        removed: await each(
          u.remove,
          "DELETE FROM nodes WHERE name = $1 AND stale_since IS NOT NULL AND stale_since <= $2",
          [u.staleBefore],
        ),
      };
    });
  }

  async putChallenge(ch: ChallengeRecord): Promise<void> {
    await this.tx((c) =>
      c.query("INSERT INTO challenges (challenge, method, token, expires_at) VALUES ($1, $2, $3, $4)", [
        ch.challenge,
        ch.method,
        ch.token,
        ch.expiresAt,
      ]),
    );
  }

  async consumeChallenge(challenge: string, now: Date): Promise<ChallengeRecord | undefined> {
    const at = now.toISOString();
    const row = await this.tx(async (c) => {
      // Concurrent DELETEs of one row queue on its lock; only the first finds it, so the challenge is taken once.
      const { rows } = await c.query<ChallengeRow>(
        "DELETE FROM challenges WHERE challenge = $1 AND expires_at > $2 RETURNING *",
        [challenge, at],
      );
      return rows[0];
    });
    return row && toChallenge(row);
  }

  async deleteExpiredChallenges(now: Date): Promise<number> {
    // SKIP LOCKED keeps replicas sweeping at the same moment from waiting on (or deadlocking over) rows another
    // transaction is already deleting; whatever one skips, the next sweep takes.
    return this.tx(async (c) => {
      const r = await c.query(
        `DELETE FROM challenges WHERE challenge IN
           (SELECT challenge FROM challenges WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)`,
        [now.toISOString()],
      );
      return r.rowCount ?? 0;
    });
  }

  async getCertAuthority(type: "host" | "user"): Promise<CertAuthorityRecord | undefined> {
    const { rows } = await this.pool.query<CaRow>("SELECT * FROM cert_authorities WHERE type = $1", [type]);
    return rows[0] && toCa(rows[0]);
  }

  async initCertAuthority(ca: Omit<CertAuthorityRecord, "revision">): Promise<CertAuthorityRecord> {
    return this.tx(async (c) => {
      // A losing INSERT waits for the winner to commit, and the SELECT (a new snapshot under READ COMMITTED) then
      // sees the winner's key.
      await c.query(
        `INSERT INTO cert_authorities (type, active, previous, revision) VALUES ($1, $2, $3, 1)
         ON CONFLICT (type) DO NOTHING`,
        [ca.type, json(ca.active), json(ca.previous)],
      );
      const { rows } = await c.query<CaRow>("SELECT * FROM cert_authorities WHERE type = $1", [ca.type]);
      return toCa(rows[0]);
    });
  }

  async updateCertAuthority(ca: CertAuthorityRecord): Promise<boolean> {
    return this.tx(async (c) => {
      const r = await c.query(
        `UPDATE cert_authorities SET active = $1, previous = $2, revision = revision + 1
         WHERE type = $3 AND revision = $4`,
        [json(ca.active), json(ca.previous), ca.type, ca.revision],
      );
      return r.rowCount === 1;
    });
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    await this.tx((c) => addAudit(c, event));
  }

  async listAudit(limit: number): Promise<AuditEvent[]> {
    const { rows } = await this.pool.query<AuditRow>("SELECT * FROM audit_events ORDER BY id DESC LIMIT $1", [
      Math.max(0, Math.floor(limit)),
    ]);
    return rows.map(toAudit);
  }

  async pruneAudit(before: Date): Promise<number> {
    return this.tx(async (c) => {
      const r = await c.query("DELETE FROM audit_events WHERE at < $1", [before.toISOString()]);
      return r.rowCount ?? 0;
    });
  }

  /** Writes one enrollment whole: a reason or detail from an earlier status must not linger on the new one. */
  private async putEnrollment(c: PoolClient, e: EnrollmentRecord): Promise<void> {
    await c.query(
      `INSERT INTO enrollments (cloud, account, region, instance_id, node_name, status, reason, detail, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (cloud, account, region, instance_id) DO UPDATE SET node_name = EXCLUDED.node_name,
         status = EXCLUDED.status, reason = EXCLUDED.reason, detail = EXCLUDED.detail,
         updated_at = EXCLUDED.updated_at`,
      [
        ...[e.cloud, e.account, e.region, e.instanceId, e.nodeName, e.status, e.reason ?? null],
        ...[e.detail === undefined ? null : json(e.detail), e.updatedAt],
      ],
    );
  }

  async upsertEnrollment(e: EnrollmentRecord): Promise<void> {
    await this.tx((c) => this.putEnrollment(c, e));
  }

  async claimEnrollment(
    e: EnrollmentRecord,
    isFree: (current: EnrollmentRecord | undefined) => boolean,
  ): Promise<boolean> {
    return this.tx(async (c) => {
      // A row lock would not cover an instance seen for the first time; the advisory lock covers both cases.
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
        `${e.cloud}/${e.account}/${e.region}/${e.instanceId}`,
      ]);
      const { rows } = await c.query<EnrollmentRow>(
        "SELECT * FROM enrollments WHERE cloud = $1 AND account = $2 AND region = $3 AND instance_id = $4",
        [e.cloud, e.account, e.region, e.instanceId],
      );
      if (!isFree(rows[0] ? toEnrollment(rows[0]) : undefined)) return false;
      await this.putEnrollment(c, e);
      return true;
    });
  }

  async listEnrollments(): Promise<EnrollmentRecord[]> {
    const { rows } = await this.pool.query<EnrollmentRow>(
      `SELECT * FROM enrollments
       ORDER BY cloud COLLATE "C", account COLLATE "C", region COLLATE "C", instance_id COLLATE "C"`,
    );
    return rows.map(toEnrollment);
  }

  async resourceWatermark(kind: string): Promise<string> {
    const { rows } = await this.pool.query<{ n: string; u: string | null; r: string; c: string | null }>(
      `SELECT COUNT(*) AS n, CAST(MAX(updated_at) AS TEXT) AS u, COALESCE(SUM(revision), 0) AS r,
         CAST(MAX(created_at) AS TEXT) AS c
       FROM resources WHERE kind = $1`,
      [kind],
    );
    const r = rows[0];
    return `${r.n}|${r.u ?? ""}|${r.r}|${r.c ?? ""}`;
  }

  async putDiscoveryStatus(name: string, status: DiscoveryStatus, at: Date): Promise<void> {
    await this.pool.query(
      `INSERT INTO discovery_status (name, status, updated_at)
       SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM resources WHERE kind = 'discovery_config' AND key = $1)
       ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at`,
      [name, json(status), at.toISOString()],
    );
  }

  async listDiscoveryStatus(now = new Date()): Promise<Map<string, DiscoveryStatus>> {
    const { rows } = await this.pool.query<{ name: string; status: DiscoveryStatus }>(
      "SELECT name, status FROM discovery_status",
    );
    return statusesOverScopes(new Map(rows.map((r) => [r.name, r.status])), await this.listConfigScopes(), now);
  }

  async recordScopeResults(
    results: { cloud: string; account: string; region: string; error?: { code: string; message: string } }[],
    at: Date,
  ): Promise<void> {
    await this.tx(async (c) => {
      for (const r of results)
        if (r.error)
          await c.query(
            `INSERT INTO scope_errors (cloud, account, region, code, message, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (cloud, account, region) DO UPDATE SET code = EXCLUDED.code, message = EXCLUDED.message,
               last_seen = EXCLUDED.last_seen`,
            [r.cloud, r.account, r.region, r.error.code, r.error.message, at.toISOString()],
          );
        else
          await c.query("DELETE FROM scope_errors WHERE cloud = $1 AND account = $2 AND region = $3", [
            r.cloud,
            r.account,
            r.region,
          ]);
    });
  }

  async listScopeErrors(): Promise<ScopeErrorRecord[]> {
    const { rows } = await this.pool.query<ScopeErrorRow>(
      `SELECT * FROM scope_errors ORDER BY cloud COLLATE "C", account COLLATE "C", region COLLATE "C"`,
    );
    return rows.map(toScopeError);
  }

  async enrollmentsOfNode(nodeName: string): Promise<EnrollmentRecord[]> {
    const { rows } = await this.pool.query<EnrollmentRow>(
      "SELECT * FROM enrollments WHERE node_name = $1 ORDER BY updated_at DESC",
      [nodeName],
    );
    return rows.map(toEnrollment);
  }
}

/** A fixed total order on strings; for lock ordering any order works as long as every replica uses the same one. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Inserts a node unless one of that name exists, on a client inside a transaction. */
async function addNode(c: PoolClient, node: NodeRecord): Promise<"inserted" | "exists"> {
  const r = await c.query(
    `INSERT INTO nodes (name, labels, join_method, token, host_public_key, principals, joined_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
    [
      node.name,
      json(node.labels),
      node.joinMethod,
      node.token,
      node.hostPublicKey,
      json(node.principals),
      node.joinedAt,
    ],
  );
  return r.rowCount === 1 ? "inserted" : "exists";
}

/** Inserts or replaces a node's certificate record, on a client inside a transaction. */
async function setNodeCertificate(c: PoolClient, n: NodeCertificateRecord): Promise<void> {
  await c.query(
    `INSERT INTO node_certificates (node_name, host_ca_key, user_ca_keys, issued_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (node_name) DO UPDATE SET host_ca_key = EXCLUDED.host_ca_key,
       user_ca_keys = EXCLUDED.user_ca_keys, issued_at = EXCLUDED.issued_at`,
    [n.node, n.hostCaKey, json(n.userCaKeys), n.issuedAt],
  );
}

/** Appends one audit row, on a client inside a transaction. */
async function addAudit(c: PoolClient, event: AuditEvent): Promise<void> {
  await c.query(
    `INSERT INTO audit_events (at, type, source, method, token, node, code, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [event.at, event.type, ...OPTIONAL_AUDIT_FIELDS.map((f) => event[f] ?? null)],
  );
}
