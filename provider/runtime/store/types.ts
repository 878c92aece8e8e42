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

/** Which CA keys a node's credentials come from, as of its last certificate. */
export interface NodeCertificateRecord {
  node: string;
  /** The host CA public key that signed the node's current host certificate. */
  hostCaKey: string;
  /** The user CA public keys the node was given to trust (sshd's TrustedUserCAKeys). */
  userCaKeys: string[];
  issuedAt: string;
}

/** The store every backend implements. */
export interface Store {
  /** Applies pending versioned migrations. Safe to call from several replicas at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Writes all resources in one transaction: either every one is stored or none is. */
  putResources(items: { kind: string; key: string; doc: Record<string, unknown> }[]): Promise<StoredResource[]>;
  getResource(kind: string, key: string): Promise<StoredResource | undefined>;
  listResources(kind?: string): Promise<StoredResource[]>;
  /** Returns false when there was nothing to delete. */
  deleteResource(kind: string, key: string): Promise<boolean>;

  /** Inserts a node; "exists" when a node of that name already joined (enforced by a unique key, race-free). */
  insertNode(node: NodeRecord): Promise<"inserted" | "exists">;
  getNode(name: string): Promise<NodeRecord | undefined>;
  listNodes(): Promise<NodeRecord[]>;
  /** Deletes the node and its certificate record; false when there was no such node. */
  deleteNode(name: string): Promise<boolean>;
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
}
