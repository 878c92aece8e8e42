/**
 * The table rows both backends read, and their mapping to the store's records. The backends differ only in how a
 * column arrives: SQLite hands back JSON as text and times as ISO text, PostgreSQL parsed JSONB and Date objects,
 * so the rows are generic over those and each backend passes its decoders.
 */
import type {
  AuditEvent,
  CertAuthorityRecord,
  ChallengeRecord,
  EnrollmentRecord,
  NodeCertificateRecord,
  NodeRecord,
  ScopeErrorRecord,
  StoredResource,
} from "./types";

/** A row of `resources`; `J` is how a JSON column arrives, `T` a time column. */
export interface ResourceRow<J, T> {
  kind: string;
  key: string;
  doc: J;
  revision: number;
  created_at: T;
  updated_at: T;
}

/** A row of `nodes`. */
export interface NodeRow<J, T> {
  name: string;
  labels: J;
  join_method: string;
  token: string;
  host_public_key: string;
  principals: J;
  joined_at: T;
  stale_since: T | null;
}

/** A row of `challenges`. */
export interface ChallengeRow<T> {
  challenge: string;
  method: string;
  token: string;
  expires_at: T;
}

/** A row of `cert_authorities`. */
export interface CaRow<J> {
  type: "host" | "user";
  active: J;
  previous: J;
  revision: number;
}

/** A row of `audit_events`; `I` is how the id arrives (pg returns BIGINT as a string). */
export type AuditRow<I, T> = { id: I; at: T; type: string } & Record<
  "source" | "method" | "token" | "node" | "code" | "reason",
  string | null
>;

/** A row of `enrollments`. */
export interface EnrollmentRow<J, T> {
  cloud: string;
  account: string;
  region: string;
  instance_id: string;
  node_name: string;
  status: string;
  reason: string | null;
  detail: J | null;
  updated_at: T;
}

/** A row of `scope_errors`. */
export interface ScopeErrorRow<T> {
  cloud: string;
  account: string;
  region: string;
  code: string;
  message: string;
  first_seen: T;
  last_seen: T;
}

/** A row of `node_certificates`. */
export interface NodeCertificateRow<J, T> {
  node_name: string;
  host_ca_key: string;
  user_ca_keys: J;
  issued_at: T;
}

/** Audit columns that may be null. */
export const OPTIONAL_AUDIT_FIELDS = ["source", "method", "token", "node", "code", "reason"] as const;

/** How a backend's columns decode: JSON columns to values, time columns to ISO strings, ids to numbers. */
export interface ColumnDecoders<J, T, I> {
  json: (v: J) => unknown;
  time: (v: T) => string;
  id: (v: I) => number;
}

/** The row-to-record mappers of a backend. */
export function rowMappers<J, T, I>(d: ColumnDecoders<J, T, I>) {
  return {
    toResource: (r: ResourceRow<J, T>): StoredResource => ({
      kind: r.kind,
      key: r.key,
      doc: d.json(r.doc) as Record<string, unknown>,
      revision: r.revision,
      createdAt: d.time(r.created_at),
      updatedAt: d.time(r.updated_at),
    }),
    toNode: (r: NodeRow<J, T>): NodeRecord => ({
      name: r.name,
      labels: d.json(r.labels) as Record<string, string>,
      joinMethod: r.join_method,
      token: r.token,
      hostPublicKey: r.host_public_key,
      principals: d.json(r.principals) as string[],
      joinedAt: d.time(r.joined_at),
      ...(r.stale_since !== null && r.stale_since !== undefined && { staleSince: d.time(r.stale_since) }),
    }),
    toChallenge: (r: ChallengeRow<T>): ChallengeRecord => ({
      challenge: r.challenge,
      method: r.method,
      token: r.token,
      expiresAt: d.time(r.expires_at),
    }),
    toCa: (r: CaRow<J>): CertAuthorityRecord => ({
      type: r.type,
      active: d.json(r.active) as CertAuthorityRecord["active"],
      previous: d.json(r.previous) as CertAuthorityRecord["previous"],
      revision: r.revision,
    }),
    toAudit: (r: AuditRow<I, T>): AuditEvent => {
      const e: AuditEvent = { id: d.id(r.id), at: d.time(r.at), type: r.type };
      for (const f of OPTIONAL_AUDIT_FIELDS) if (r[f] !== null) e[f] = r[f];
      return e;
    },
    toEnrollment: (r: EnrollmentRow<J, T>): EnrollmentRecord => ({
      cloud: r.cloud,
      account: r.account,
      region: r.region,
      instanceId: r.instance_id,
      nodeName: r.node_name,
      status: r.status,
      ...(r.reason !== null && { reason: r.reason }),
      ...(r.detail !== null && { detail: d.json(r.detail) as Record<string, unknown> }),
      updatedAt: d.time(r.updated_at),
    }),
    toScopeError: (r: ScopeErrorRow<T>): ScopeErrorRecord => ({
      cloud: r.cloud,
      account: r.account,
      region: r.region,
      code: r.code,
      message: r.message,
      firstSeen: d.time(r.first_seen),
      lastSeen: d.time(r.last_seen),
    }),
    toNodeCertificate: (r: NodeCertificateRow<J, T>): NodeCertificateRecord => ({
      node: r.node_name,
      hostCaKey: r.host_ca_key,
      userCaKeys: d.json(r.user_ca_keys) as string[],
      issuedAt: d.time(r.issued_at),
    }),
  };
}
