import * as crypto from "crypto";
import { cloudJoinMethods, cloudPlugin, nodeInstance } from "../clouds";
import { JOIN_METHODS, Token } from "../model";
import { outdatedReason } from "../runtime/rotation";
import type { CertAuthorityRecord, Store } from "../runtime/store/types";
import {
  CertificateRequestError,
  parsePublicKeyLine,
  ParsedPublicKey,
  signHostCertificate,
  trustedPublicKeys,
} from "../ssh";
import { JoinRefusal } from "./errors";
import type { AttestContext, JoinMethodDefinition } from "./methods";
import { RateLimiter } from "./rate-limit";
import { secretTokenKey, storedToken, TOKEN_METHOD, tokenKey } from "./tokens";

/** What a successful join returns (SPEC §4). */
export interface JoinResponse {
  node_name: string;
  labels: Record<string, string>;
  host_certificate: string;
  host_ca_public_keys: string[];
  user_ca_public_keys: string[];
  expires_at: string;
}

/** Something the service reports: an accepted or refused join, for audit, logs and metrics. */
export interface JoinEvent {
  type: "join.accepted" | "join.reissued" | "join.refused" | "challenge.issued" | "challenge.refused";
  source: string;
  method?: string;
  token?: string;
  node?: string;
  code?: string;
  reason?: string;
  status?: number;
}

/** Settings of the join service. */
export interface JoinServiceOptions {
  store: Store;
  clusterName: string;
  settings: AttestContext["settings"];
  rateLimit: { requestsPerMinute: number; burst: number };
  /** Lifetime of host certificates. */
  certificateTtlSeconds: number;
  /**
   * Called for every accepted or refused request (audit log, metrics). `audited`: the store already holds the
   * event's audit row, written in the same transaction as the node it accepted.
   */
  onEvent?: (e: JoinEvent, audited: boolean) => void | Promise<void>;
  now?: () => Date;
  /** Join methods by name; default the token method and every registered cloud's (tests pass fakes over them). */
  methods?: Record<string, JoinMethodDefinition>;
}

const CHALLENGE_TTL_MS = 60_000;
const CHALLENGE_BYTES = 24;
const PUBLIC_KEY_RE = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\n]{0,200})?$/;

/** The host key of a join request, decoded; anything else is `bad_host_key` before any lookup or cloud call. */
function hostKeyOf(b: Record<string, unknown>): ParsedPublicKey {
  const text = str(b, "host_public_key", 16 * 1024).trim();
  const bad = (why: string) =>
    new JoinRefusal(
      "bad_host_key",
      `host_public_key ${why}; send one line such as the contents of /etc/ssh/ssh_host_ed25519_key.pub`,
      400,
    );
  if (!PUBLIC_KEY_RE.test(text)) throw bad("is not one OpenSSH public key line");
  try {
    return parsePublicKeyLine(text);
  } catch {
    throw bad("does not decode to the key its type names (truncated, or another key type)");
  }
}

function str(body: Record<string, unknown>, field: string, max = 512): string {
  const v = body[field];
  if (typeof v !== "string" || v.length === 0)
    throw new JoinRefusal("missing_field", `request field "${field}" is required and must be a string`, 400);
  if (v.length > max) throw new JoinRefusal("field_too_long", `request field "${field}" is longer than ${max}`, 400);
  return v;
}

/** Whether a stored host key line is the key presented (stored lines may predate canonical spelling). */
function sameKey(stored: string, presented: ParsedPublicKey): boolean {
  try {
    return parsePublicKeyLine(stored).sha256 === presented.sha256;
  } catch {
    return false;
  }
}

/** Signs, turning a refused certificate request into a refusal the client sees (never a 500). */
function certificateOrRefusal(sign: () => string): string {
  try {
    return sign();
  } catch (err) {
    if (err instanceof CertificateRequestError) throw new JoinRefusal(`certificate_${err.code}`, err.message, 400);
    throw err;
  }
}

/** Verifies joins against tokens, enforces one join per node, and issues host certificates. */
export class JoinService {
  private readonly limiter: RateLimiter;
  private readonly now: () => Date;
  private readonly methods: ReadonlyMap<string, JoinMethodDefinition>;

  /** A service over `opts.store`. */
  constructor(private readonly opts: JoinServiceOptions) {
    this.limiter = new RateLimiter(opts.rateLimit.requestsPerMinute, opts.rateLimit.burst);
    this.now = opts.now ?? (() => new Date());
    this.methods = new Map(Object.entries({ token: TOKEN_METHOD, ...cloudJoinMethods(), ...opts.methods }));
  }

  /** Issues a single-use challenge valid for 60 s, for methods that sign one (iam, azure). */
  async challenge(body: unknown, source: string): Promise<{ challenge: string; expires_at: string }> {
    let method: string | undefined;
    let tokenName: string | undefined;
    try {
      this.limit(source);
      const b = this.object(body);
      method = str(b, "method", 32);
      tokenName = str(b, "token", 253);
      if (!this.methods.get(method)?.needsChallenge)
        throw new JoinRefusal("challenge_not_used", `join method "${method}" does not use a challenge`, 400);
      await this.token(method, tokenName);
      // 24 bytes: 32 base64url characters, the longest nonce Azure's IMDS signs into an attested document.
      const challenge = crypto.randomBytes(CHALLENGE_BYTES).toString("base64url");
      const expiresAt = new Date(this.now().getTime() + CHALLENGE_TTL_MS).toISOString();
      await this.opts.store.putChallenge({ challenge, method, token: tokenName, expiresAt });
      await this.emit({ type: "challenge.issued", source, method, token: tokenName });
      return { challenge, expires_at: expiresAt };
    } catch (err) {
      if (err instanceof JoinRefusal) {
        const token = tokenName === undefined ? undefined : await this.auditName(tokenName);
        await this.emit({ type: "challenge.refused", source, method, token, ...this.describe(err) });
      }
      throw err;
    }
  }

  /** Verifies one join request and, when every check passes, records the node and returns its credentials. */
  async join(body: unknown, source: string): Promise<JoinResponse> {
    let method: string | undefined;
    let tokenName: string | undefined;
    let node: string | undefined;
    try {
      this.limit(source);
      const b = this.object(body);
      method = str(b, "method", 32);
      if (!(JOIN_METHODS as readonly string[]).includes(method))
        throw new JoinRefusal("unknown_method", `method must be one of ${JOIN_METHODS.join(", ")}`, 400);
      const rawToken = str(b, "token", 253);
      tokenName = tokenKey(method, rawToken);
      const hostKey = hostKeyOf(b);
      const def = this.methods.get(method);
      if (!def) throw new JoinRefusal("method_unavailable", `join method "${method}" is not available here`, 400);
      def.validate?.(b, this.opts.settings, this.now());
      const token = await this.token(method, rawToken);
      const ctx: AttestContext = {
        token,
        tokenName,
        hostKey,
        now: this.now(),
        clusterName: this.opts.clusterName,
        settings: this.opts.settings,
      };
      if (def.needsChallenge) ctx.challenge = await this.takeChallenge(b, method, rawToken);
      const attested = await def.attest(b, ctx);
      node = attested.nodeName;
      const hostCa = await this.opts.store.getCertAuthority("host");
      const userCa = await this.opts.store.getCertAuthority("user");
      if (!hostCa || !userCa) throw new Error("certificate authorities are not initialized");
      const ttl = this.opts.certificateTtlSeconds;
      const principals = [...new Set(attested.principals)];
      const hostCertificate = certificateOrRefusal(() =>
        // The key decoded at the edge (hostKeyOf) is signed as is, not decoded a second time.
        signHostCertificate(hostCa, { publicKey: hostKey, principals, ttlSeconds: ttl, keyId: attested.nodeName }),
      );
      const labels = { ...(await this.discoveredLabels(attested.labels)), "discovery/join-method": method };
      const now = this.now();
      const at = now.toISOString();
      const userCaKeys = trustedPublicKeys(userCa);
      const certificate = { node: node, hostCaKey: hostCa.active.publicKey, userCaKeys, issuedAt: at };
      const accepted: JoinEvent = { type: "join.accepted", source, method, token: tokenName, node };
      // The node, its certificate record and the audit row of its join: one transaction, all or nothing.
      const inserted = await this.opts.store.recordJoin({
        node: {
          name: node,
          labels,
          joinMethod: method,
          token: tokenName,
          hostPublicKey: hostKey.line,
          principals: attested.principals,
          joinedAt: at,
        },
        certificate,
        audit: { at, ...accepted },
      });
      if (inserted === "exists") {
        if (!(await this.reissuesForRotation(node, method, hostKey, hostCa, userCa)))
          throw new JoinRefusal("already_joined", `node ${node} has already joined; a second join is refused`);
        await this.opts.store.putNodeCertificate(certificate);
        await this.emit({ type: "join.reissued", source, method, token: tokenName, node });
      } else await this.emit(accepted, true);
      return {
        node_name: node,
        labels,
        host_certificate: hostCertificate,
        host_ca_public_keys: trustedPublicKeys(hostCa),
        user_ca_public_keys: userCaKeys,
        expires_at: new Date(now.getTime() + ttl * 1000).toISOString(),
      };
    } catch (err) {
      if (err instanceof JoinRefusal) {
        const token = tokenName === undefined ? undefined : await this.auditName(tokenName);
        await this.emit({ type: "join.refused", source, method, token, node, ...this.describe(err) });
      }
      throw err;
    }
  }

  /**
   * The attested labels, completed from what discovery recorded about the same instance (only for a verified
   * instance, whose labels name it): which runtime's pass installed it, and its region when the method did not
   * prove one. Attested labels are never overridden.
   */
  private async discoveredLabels(attested: Record<string, string>): Promise<Record<string, string>> {
    const at = nodeInstance(attested);
    if (!at?.instanceId) return attested;
    const { cloud, account, instanceId, region } = at;
    const identity = cloudPlugin(cloud)!.identity;
    const nodeName = identity.nodeName(account, instanceId, region);
    const found = (await this.opts.store.enrollmentsOfNode(nodeName)).find(
      (e) => e.cloud === cloud && e.account === account && e.instanceId === instanceId,
    );
    if (!found) return attested;
    // Which runtime's pass installed the node (Teleport #34660: users ask which cluster touched a VM).
    const by = (found.detail as { discoveredBy?: unknown } | undefined)?.discoveredBy;
    return {
      [identity.regionLabel]: found.region,
      ...(typeof by === "string" && by !== "" && { "discovery/discovered-by": by }),
      ...attested,
    };
  }

  /**
   * Whether a node that already joined may be certified again: only when its credentials no longer match the CAs
   * (a rotation started or completed since), only for the same join method and the same host key it joined with
   * (the proof is the same identity, and the certificate is useless without that key), and once per change: a node
   * whose credentials match is refused as before.
   */
  private async reissuesForRotation(
    name: string,
    method: string,
    hostKey: ParsedPublicKey,
    hostCa: CertAuthorityRecord,
    userCa: CertAuthorityRecord,
  ): Promise<boolean> {
    const node = await this.opts.store.getNode(name);
    if (!node || node.joinMethod !== method || !sameKey(node.hostPublicKey, hostKey)) return false;
    return outdatedReason(hostCa, userCa, await this.opts.store.getNodeCertificate(name)) !== undefined;
  }

  /**
   * The token name as it may appear in logs: a name that is the secret of a token-method token (sent with
   * the wrong method, say) is replaced by its hash, so a refusal never writes a secret down.
   */
  private async auditName(name: string): Promise<string> {
    if (name.startsWith("sha256:")) return name;
    const key = secretTokenKey(name);
    return (await this.opts.store.getResource("token", key)) ? key : name;
  }

  private limit(source: string): void {
    if (!this.limiter.take(source))
      throw new JoinRefusal("rate_limited", `too many join requests from ${source}; retry later`, 429);
  }

  private object(body: unknown): Record<string, unknown> {
    if (body === null || typeof body !== "object" || Array.isArray(body))
      throw new JoinRefusal("malformed_body", "the request body must be a JSON object", 400);
    return body as Record<string, unknown>;
  }

  /** Loads the token named by the request; secret token names are looked up by hash only. */
  private async token(method: string, name: string): Promise<Token> {
    const stored = await this.opts.store.getResource("token", tokenKey(method, name));
    // One refusal for "no such token" and "wrong method", so names can't be probed.
    const denied = () => new JoinRefusal("token_not_allowed", `no token of that name allows join method ${method}`);
    if (!stored) throw denied();
    // Secret tokens are stored with their name masked; the caller just proved it knows the name.
    const resource = storedToken(stored.doc, name);
    if (!resource || resource.spec.join_method !== method) throw denied();
    const expires = resource.metadata.expires;
    if (expires && Date.parse(expires) <= this.now().getTime())
      throw new JoinRefusal("token_expired", `the token expired at ${expires}`);
    return resource;
  }

  private async takeChallenge(b: Record<string, unknown>, method: string, token: string) {
    const value = str(b, "challenge", 128);
    const c = await this.opts.store.consumeChallenge(value, this.now());
    if (!c)
      throw new JoinRefusal(
        "challenge_invalid",
        "the challenge is unknown, expired or already used; request a new one",
      );
    if (c.method !== method || c.token !== token)
      throw new JoinRefusal("challenge_mismatch", "the challenge was issued for another method or token");
    return c;
  }

  private describe(err: JoinRefusal) {
    return { code: err.code, reason: err.reason, status: err.status };
  }

  private async emit(e: JoinEvent, audited = false): Promise<void> {
    await this.opts.onEvent?.(e, audited);
  }
}
