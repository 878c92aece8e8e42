/**
 * The runtime's persistent state. Two backends implement it (SQLite, PostgreSQL) and pass the same
 * test suite. Every write is one transaction; nothing is half-written.
 */

/** A stored resource document (token, installer, discovery_config), keyed by kind and lookup key. */
export interface StoredResource {
  kind: string;
  /** The lookup key: the resource name, or `sha256:<hex>` of the name for secret (token-method) tokens. */
  key: string;
  /** The validated document as JSON (for secret tokens, metadata.name is already masked by the caller). */
  doc: Record<string, unknown>;
  /** Increases by one on every write of this key. */
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** One resource to write: its kind, lookup key and document, and the revision it must have now, if any. */
export interface ResourceWrite {
  kind: string;
  key: string;
  doc: Record<string, unknown>;
  /** Write only over this stored revision; 0: only when nothing is stored under the key. */
  ifRevision?: number;
}

/** A conditional write found another revision than the one it was made from; nothing was written. */
export class RevisionMismatch extends Error {
  /** Stable code of this refusal. */
  readonly code = "revision_mismatch";
  /** Which resource, and the revision stored now (0: none). */
  constructor(
    readonly kind: string,
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      actual === 0
        ? `${kind} ${key} is not stored (expected revision ${expected})`
        : expected === 0
          ? `${kind} ${key} already exists (revision ${actual})`
          : `${kind} ${key} is at revision ${actual}, not ${expected}`,
    );
  }
}

/** A node that joined. */
export interface NodeRecord {
  /** Unique node name, e.g. `123456789012-i-0abc` for EC2. */
  name: string;
  labels: Record<string, string>;
  joinMethod: string;
  /** Name of the token used to join; for token-method tokens, its hash. */
  token: string;
  /** The host public key in OpenSSH format. */
  hostPublicKey: string;
  /** Addresses and names the host certificate was issued for. */
  principals: string[];
  joinedAt: string;
  /** Since when the node's instance is known to be terminated or gone; absent while it is active. */
  staleSince?: string;
}

/** One pass's verdict on nodes whose instances it checked (see `Store.updateNodeStaleness`). */
export interface NodeStalenessUpdate {
  /** Nodes whose instances are gone: marked stale as of `at`, unless already stale (the first sighting counts). */
  stale: string[];
  /** Nodes whose instances exist again: made active. */
  active: string[];
  /** Nodes whose instances are still gone: deleted if stale since before `staleBefore` (the grace period). */
  remove: string[];
  at: string;
  staleBefore: string;
}

/** What an update changed, by node name. */
export interface NodeStalenessChanges {
  staled: string[];
  activated: string[];
  removed: string[];
}

/** A single-use join challenge (iam, azure). */
export interface ChallengeRecord {
  challenge: string;
  method: string;
  token: string;
  expiresAt: string;
}

/** One certificate authority key pair. */
export interface CaKey {
  publicKey: string;
  privateKey: string;
  createdAt: string;
}

/** A certificate authority (host or user): the signing key, plus older keys still trusted during a rotation. */
export interface CertAuthorityRecord {
  type: "host" | "user";
  active: CaKey;
  /** Keys that are still trusted until the rotation completes. */
  previous: CaKey[];
  /** Increases by one on every change; writes with a stale revision are refused. */
  revision: number;
}

/** An audit event, e.g. a join accepted or refused, with its reason. */
export interface AuditEvent {
  id?: number;
  at: string;
  type: string;
  /** Source address of the request. */
  source?: string;
  method?: string;
  token?: string;
  node?: string;
  code?: string;
  reason?: string;
}

/** What an accepted first join writes, together (see {@link Store.recordJoin}). */
export interface JoinRecord {
  node: NodeRecord;
  certificate: NodeCertificateRecord;
  audit: AuditEvent;
}

/** The enrollment status of one instance (issue 4 writes these). */
export interface EnrollmentRecord {
  cloud: string;
  account: string;
  region: string;
  instanceId: string;
  nodeName: string;
  status: string;
  reason?: string;
  detail?: Record<string, unknown>;
  updatedAt: string;
}

/** What the runtime scanning a discovery_config reports about it (SPEC §4); never part of the document. */
export interface DiscoveryStatus {
  state: "syncing" | "running" | "error";
  /** Why the last pass failed for some scope, joined per scope and truncated; empty when nothing failed. */
  error_message: string;
  /** When the last pass over this config finished (RFC 3339); absent before the first. */
  last_sync_time?: string;
  found: number;
  enrolled: number;
  failed: number;
  /** The runtime that wrote this status (cluster name and runtime id). */
  discovered_by?: string;
}

/** A whole scope (account × region, project × zone) that failed in a pass, e.g. a role that could not be assumed. */
export interface ScopeErrorRecord {
  cloud: string;
  account: string;
  region: string;
  /** The cloud's error code, e.g. AccessDenied. */
  code: string;
  message: string;
  firstSeen: string;
  lastSeen: string;
}

/** A cheap fingerprint of every document of a kind: it changes whenever one is written or deleted. */
export type ResourceWatermark = string;

/** Which CA keys a node's credentials come from, as of its last certificate. */
export interface NodeCertificateRecord {
  node: string;
  /** The host CA public key that signed the node's current host certificate. */
  hostCaKey: string;
  /** The user CA public keys the node was given to trust (sshd's TrustedUserCAKeys). */
  userCaKeys: string[];
  issuedAt: string;
}

/**
 * What one replica's last pass over a discovery_config found in one of its scopes (account × region, project ×
 * zone, subscription). A config's status sums the rows still fresh (see provider/runtime/config-status.ts).
 */
export interface ConfigScopeStatus {
  config: string;
  /** `*` (with the replica's runtime id as account): the replica's whole pass over the config failed. */
  cloud: string;
  account: string;
  region: string;
  found: number;
  enrolled: number;
  failed: number;
  /** The scope's errors as the config's error_message shows them, with their fixes; empty when it listed cleanly. */
  error: string;
  /** The runtime id of the replica that listed the scope. */
  holder: string;
  /** Where the scope came in its holder's pass, so a replica's errors read in the order its pass met them. */
  position: number;
  lastSync: string;
  /** The row counts until this instant, unless its holder writes it again (a replica that died stops counting). */
  freshUntil: string;
}

/** One scope of a config, as the rows of ConfigScopeStore name it. */
export type ConfigScopeRef = Pick<ConfigScopeStatus, "cloud" | "account" | "region">;

/** The status of a discovery_config per scope, written by each replica of its group for the scopes it lists. */
export interface ConfigScopeStore {
  /**
   * Writes `rows` (scopes of `config` one pass listed): one upsert each, the newest writer owning the row. With
   * `prune`, it also deletes the config's rows of scopes that pass did not report at all (neither listed nor left to
   * another replica: no longer the config's) if `prune.holder` wrote them or they are no longer fresh at
   * `prune.now`. One transaction; nothing is kept for a config that does not exist.
   */
  putConfigScopes(
    config: string,
    rows: ConfigScopeStatus[],
    prune?: { holder: string; reported: ConfigScopeRef[]; now: Date },
  ): Promise<void>;
  /** Keeps the rows `holder` wrote for `config` fresh until `freshUntil`: its pass over the config has begun. */
  extendConfigScopes(config: string, holder: string, freshUntil: Date): Promise<void>;
  /** The scope rows of `config`, or of every config, by config, cloud, account, region. */
  listConfigScopes(config?: string): Promise<ConfigScopeStatus[]>;
}

/** The store every backend implements. */
export interface Store extends ScopeLeaseStore, ConfigScopeStore {
  /** Applies pending versioned migrations. Safe to call from several replicas at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /**
   * Writes all resources in one transaction: either every one is stored or none is. An item with `ifRevision` is
   * written only if its stored revision is that one (0: only if absent); otherwise nothing is written and the
   * promise rejects with a RevisionMismatch.
   */
  putResources(items: ResourceWrite[]): Promise<StoredResource[]>;
  getResource(kind: string, key: string): Promise<StoredResource | undefined>;
  listResources(kind?: string): Promise<StoredResource[]>;
  /**
   * Returns false when there was nothing to delete, or (with `ifRevision`) when the stored revision is another one,
   * in which case the resource is kept.
   */
  deleteResource(kind: string, key: string, ifRevision?: number): Promise<boolean>;

  /** Inserts a node; "exists" when a node of that name already joined (enforced by a unique key, race-free). */
  insertNode(node: NodeRecord): Promise<"inserted" | "exists">;
  /**
   * Records a first join in one transaction: the node (as {@link insertNode}), its certificate record and its audit
   * row. "exists" when a node of that name already joined, and then nothing is written; when any write fails, none
   * is kept.
   */
  recordJoin(join: JoinRecord): Promise<"inserted" | "exists">;
  getNode(name: string): Promise<NodeRecord | undefined>;
  listNodes(): Promise<NodeRecord[]>;
  /** Deletes the node and its certificate record; false when there was no such node. */
  deleteNode(name: string): Promise<boolean>;
  /**
   * Applies one pass's staleness verdicts in one transaction. Each change is conditional on the row as it is now,
   * so a node that rejoined meanwhile (a new row, active) is never deleted by a verdict about its predecessor.
   */
  updateNodeStaleness(u: NodeStalenessUpdate): Promise<NodeStalenessChanges>;
  /** Records (or replaces) which CA keys a node's newest certificate and trust come from. */
  putNodeCertificate(cert: NodeCertificateRecord): Promise<void>;
  getNodeCertificate(node: string): Promise<NodeCertificateRecord | undefined>;
  listNodeCertificates(): Promise<NodeCertificateRecord[]>;

  putChallenge(c: ChallengeRecord): Promise<void>;
  /** Atomically takes a challenge: returns it once if it exists and has not expired at `now`, then never again. */
  consumeChallenge(challenge: string, now: Date): Promise<ChallengeRecord | undefined>;
  /** Deletes the challenges expired at `now` (issued, never used); returns how many. */
  deleteExpiredChallenges(now: Date): Promise<number>;

  getCertAuthority(type: "host" | "user"): Promise<CertAuthorityRecord | undefined>;
  /** Creates the CA only if absent (first replica wins); returns the stored one either way. */
  initCertAuthority(ca: Omit<CertAuthorityRecord, "revision">): Promise<CertAuthorityRecord>;
  /** Replaces the CA if `ca.revision` is the stored revision; returns false on a concurrent change. */
  updateCertAuthority(ca: CertAuthorityRecord): Promise<boolean>;

  appendAudit(event: AuditEvent): Promise<void>;
  /** Newest first. */
  listAudit(limit: number): Promise<AuditEvent[]>;
  /** Deletes the audit events that happened before `before` (the retention); returns how many. */
  pruneAudit(before: Date): Promise<number>;

  upsertEnrollment(e: EnrollmentRecord): Promise<void>;
  /**
   * Compare-and-set for one instance: in one transaction, reads its current record, and writes `e` only when
   * `isFree(current)` says so; true when written. Two passes (replicas, or the runtime and a Pulumi update) that
   * race for the same instance get exactly one true.
   */
  claimEnrollment(e: EnrollmentRecord, isFree: (current: EnrollmentRecord | undefined) => boolean): Promise<boolean>;
  listEnrollments(): Promise<EnrollmentRecord[]>;
  /** The enrollment records of one node name (one per cloud scope that found it; usually one). */
  enrollmentsOfNode(nodeName: string): Promise<EnrollmentRecord[]>;

  /** Count, newest write and revision sum of `kind`'s documents: polled every second to notice applies and deletes. */
  resourceWatermark(kind: string): Promise<ResourceWatermark>;
  /** Writes a discovery_config's status, unless the config is gone; the document (and its revision) is untouched. */
  putDiscoveryStatus(name: string, status: DiscoveryStatus, at: Date): Promise<void>;
  /**
   * Every stored status by config name (deleting a discovery_config deletes its status in the same transaction). A
   * config with scope rows (ConfigScopeStore) shows their sum as of `now` (default: the clock), over all replicas.
   */
  listDiscoveryStatus(now?: Date): Promise<Map<string, DiscoveryStatus>>;

  /**
   * Records the outcome of the scopes a pass scanned: a failed scope is upserted (its first_seen kept), a scope
   * that succeeded has its error removed.
   */
  recordScopeResults(
    results: { cloud: string; account: string; region: string; error?: { code: string; message: string } }[],
    at: Date,
  ): Promise<void>;
  listScopeErrors(): Promise<ScopeErrorRecord[]>;
}

/**
 * One scope of one discovery group, as a lease names it: AWS account × region, GCP project × zone (`*`: every zone
 * of the project, listed at once), Azure subscription (region `*`: a subscription is listed as a whole).
 */
export interface ScopeKey {
  cloud: string;
  /** The discovery_group of the replicas that share the scope's scans. */
  group: string;
  account: string;
  region: string;
}

/** Which replica scans a scope, and until when nobody else may (see provider/runtime/scope-leases.ts). */
export interface ScopeLease extends ScopeKey {
  /** The runtime id of the replica holding the lease. */
  holder: string;
  /** Since when this holder has held it without a break (kept across renewals). */
  acquiredAt: string;
  /** The lease is free from this instant on; a holder that renews moves it forward. */
  expiresAt: string;
}

/** A replica of a discovery group that said recently that it is alive: how many share the scopes. */
export interface ReplicaHeartbeat {
  group: string;
  runtimeId: string;
  seenAt: string;
  /** The replica counts as gone from this instant on, unless it beats again. */
  expiresAt: string;
}

/**
 * Leases that let the replicas of one discovery group, sharing one store, split the scopes between them so each
 * scope is listed by one replica per poll interval. Every lease change is one statement, so two replicas racing for
 * one scope get exactly one grant. Times come from the callers (replicas need synchronised clocks, as challenges do).
 */
export interface ScopeLeaseStore {
  /**
   * Takes or renews the lease of `scope` for `holder` until `expiresAt`, in one statement: granted when the scope has
   * no lease, its lease has expired at `now`, or `holder` holds it already. Returns the lease as it is afterwards:
   * `holder` is the caller's when granted, otherwise the replica holding it (and `expiresAt` says until when).
   */
  acquireScopeLease(scope: ScopeKey, holder: string, now: Date, expiresAt: Date): Promise<ScopeLease>;
  /** Moves the expiry of each of `scopes` that `holder` still holds to `expiresAt`; returns how many it moved. */
  renewScopeLeases(holder: string, scopes: ScopeKey[], expiresAt: Date): Promise<number>;
  /** Gives up each of `scopes` that `holder` holds and that has not expired at `now` (it expires at `now`). */
  releaseScopeLeases(holder: string, scopes: ScopeKey[], now: Date): Promise<number>;
  /** Every lease row (expired ones too, until pruned) of `group`, or of every group; by cloud, account, region. */
  listScopeLeases(group?: string): Promise<ScopeLease[]>;
  /** Records that a replica is alive until `h.expiresAt` (insert or replace). */
  putReplicaHeartbeat(h: ReplicaHeartbeat): Promise<void>;
  /** The replicas of `group` (every group when undefined) alive at `now`, by runtime id. */
  listReplicas(group: string | undefined, now: Date): Promise<ReplicaHeartbeat[]>;
  /** Removes a replica's heartbeat (a clean shutdown), so the others count without it at once. */
  removeReplica(group: string, runtimeId: string): Promise<void>;
  /** Deletes the leases and heartbeats of `group` that expired before `before`; returns how many rows. */
  pruneScopeLeases(group: string, before: Date): Promise<number>;
}
