/**
 * Scope leases and replica heartbeats (see ScopeLeaseStore), written once for both backends: the SQL text is the
 * same (`$n` parameters; SQLite gets them renamed), and each backend only supplies how a statement runs. Every
 * method is single statements, each atomic by itself, so no transaction is needed.
 */
import type { ReplicaHeartbeat, ScopeKey, ScopeLease, ScopeLeaseStore } from "./types";

/** Runs one statement: the rows it returns (none for a statement without RETURNING) and how many rows it changed. */
export type RunStatement = (
  sql: string,
  params: string[],
) => Promise<{ rows: Record<string, unknown>[]; count: number }>;

const KEY = "cloud = $1 AND discovery_group = $2 AND account = $3 AND region = $4";

// Granted when free, expired at $6 (now), or held by $5 already; a renewal by the holder keeps its acquired_at.
const ACQUIRE = `
  INSERT INTO scope_leases (cloud, discovery_group, account, region, holder, acquired_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (cloud, discovery_group, account, region) DO UPDATE SET
    acquired_at = CASE WHEN scope_leases.holder = excluded.holder AND scope_leases.expires_at > excluded.acquired_at
      THEN scope_leases.acquired_at ELSE excluded.acquired_at END,
    holder = excluded.holder,
    expires_at = excluded.expires_at
  WHERE scope_leases.holder = excluded.holder OR scope_leases.expires_at <= excluded.acquired_at
  RETURNING *`;

/** A time column (a Date from pg, ISO text from SQLite) or parameter as ISO text. */
export const iso = (t: unknown) => (t instanceof Date ? t.toISOString() : new Date(String(t)).toISOString());

function toLease(r: Record<string, unknown>): ScopeLease {
  return {
    cloud: String(r.cloud),
    group: String(r.discovery_group),
    account: String(r.account),
    region: String(r.region),
    holder: String(r.holder),
    acquiredAt: iso(r.acquired_at),
    expiresAt: iso(r.expires_at),
  };
}

function toReplica(r: Record<string, unknown>): ReplicaHeartbeat {
  return {
    group: String(r.discovery_group),
    runtimeId: String(r.runtime_id),
    seenAt: iso(r.seen_at),
    expiresAt: iso(r.expires_at),
  };
}

const keyParams = (s: ScopeKey) => [s.cloud, s.group, s.account, s.region];

/** The ScopeLeaseStore methods over one backend's statement runner. */
export function scopeLeaseMethods(run: RunStatement): ScopeLeaseStore {
  const each = async (scopes: ScopeKey[], sql: string, extra: string[]) => {
    let n = 0;
    for (const s of scopes) n += (await run(sql, [...keyParams(s), ...extra])).count;
    return n;
  };
  return {
    async acquireScopeLease(scope, holder, now, expiresAt) {
      const { rows } = await run(ACQUIRE, [...keyParams(scope), holder, iso(now), iso(expiresAt)]);
      if (rows[0]) return toLease(rows[0]);
      // Refused: who holds it, read after the fact (for the report only; the grant itself was atomic).
      const held = await run(`SELECT * FROM scope_leases WHERE ${KEY}`, keyParams(scope));
      return toLease(held.rows[0]);
    },
    renewScopeLeases: (holder, scopes, expiresAt) =>
      each(scopes, `UPDATE scope_leases SET expires_at = $6 WHERE ${KEY} AND holder = $5`, [holder, iso(expiresAt)]),
    releaseScopeLeases: (holder, scopes, now) =>
      each(scopes, `UPDATE scope_leases SET expires_at = $6 WHERE ${KEY} AND holder = $5 AND expires_at > $6`, [
        holder,
        iso(now),
      ]),
    async listScopeLeases(group) {
      const order = "ORDER BY cloud, account, region, discovery_group";
      const { rows } =
        group === undefined
          ? await run(`SELECT * FROM scope_leases ${order}`, [])
          : await run(`SELECT * FROM scope_leases WHERE discovery_group = $1 ${order}`, [group]);
      return rows.map(toLease);
    },
    async putReplicaHeartbeat(h) {
      await run(
        `INSERT INTO discovery_replicas (discovery_group, runtime_id, seen_at, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (discovery_group, runtime_id) DO UPDATE SET seen_at = excluded.seen_at,
           expires_at = excluded.expires_at`,
        [h.group, h.runtimeId, iso(h.seenAt), iso(h.expiresAt)],
      );
    },
    async listReplicas(group, now) {
      const order = "ORDER BY discovery_group, runtime_id";
      const { rows } =
        group === undefined
          ? await run(`SELECT * FROM discovery_replicas WHERE expires_at > $1 ${order}`, [iso(now)])
          : await run(`SELECT * FROM discovery_replicas WHERE discovery_group = $1 AND expires_at > $2 ${order}`, [
              group,
              iso(now),
            ]);
      return rows.map(toReplica);
    },
    async removeReplica(group, runtimeId) {
      await run("DELETE FROM discovery_replicas WHERE discovery_group = $1 AND runtime_id = $2", [group, runtimeId]);
    },
    async pruneScopeLeases(group, before) {
      const params = [group, iso(before)];
      const where = "WHERE discovery_group = $1 AND expires_at < $2";
      const leases = await run(`DELETE FROM scope_leases ${where}`, params);
      const replicas = await run(`DELETE FROM discovery_replicas ${where}`, params);
      return leases.count + replicas.count;
    },
  };
}

/** `$n` parameters as better-sqlite3's named `@pn`, bound from an object (SQLite's `?n` cannot be bound by array). */
export function sqliteParams(sql: string, params: string[]): { sql: string; named: Record<string, string> } {
  return {
    sql: sql.replace(/\$(\d+)/g, "@p$1"),
    named: Object.fromEntries(params.map((v, i) => [`p${i + 1}`, v])),
  };
}
