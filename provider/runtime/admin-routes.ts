import * as crypto from "crypto";
import { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Cloud, CLOUDS, KINDS, parseDocuments, parseDuration, Resource, SourceProblem } from "../model";
import { isSecretToken, REDACTED_NAME, secretTokenKey } from "../join/tokens";
import { CertAuthorityError, completeRotation, signUserCertificate, startRotation, trustedPublicKeys } from "../ssh";
import type { RuntimeMetrics } from "./metrics";
import type { DiscoveryLoop } from "./discovery-loop";
import { applyNodeStaleness, storeBackend } from "../enroll/backend";
import { ReinstallRefusal, reinstallInstance } from "../enroll/reinstall";
import type { EnrollmentDetail } from "../enroll/rules";
import { listCaViews, listNodeViews, listOpenTasks, listResourceViews, withStatus } from "./fleet";
import { rotationProgress } from "./rotation";
import { RevisionMismatch } from "./store/types";
import type { EnrollmentRecord, Store, StoredResource } from "./store/types";

function isEnrollmentRecord(e: unknown): e is EnrollmentRecord {
  const r = e as Record<string, unknown> | null;
  return (
    !!r &&
    ["cloud", "account", "region", "instanceId", "nodeName", "status", "updatedAt"].every(
      (k) => typeof r[k] === "string",
    ) &&
    !Number.isNaN(Date.parse(r.updatedAt as string))
  );
}

const MAX_USER_CERT_TTL_MS = 30 * 24 * 3600_000;

function badRequest(reply: FastifyReply, message: string, extra: Record<string, unknown> = {}) {
  return reply.code(400).send({ error: { code: "bad_request", message, ...extra } });
}

function notFound(reply: FastifyReply, message: string) {
  return reply.code(404).send({ error: { code: "not_found", message } });
}

/** 412: the request's If-Match / If-None-Match did not hold; nothing was changed. */
function preconditionFailed(reply: FastifyReply, message: string) {
  return reply.code(412).send({ error: { code: "precondition_failed", message: `${message}; nothing was changed` } });
}

/**
 * The revision a write is conditional on: `If-None-Match: *` (0, only if absent) or `If-Match: "<revision>"` (the
 * ETag a GET answered); undefined when unconditional, or a message for a header this API does not take.
 */
function requestedRevision(req: FastifyRequest): number | undefined | { error: string } {
  const ifMatch = req.headers["if-match"];
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifMatch !== undefined && ifNoneMatch !== undefined) return { error: "send If-Match or If-None-Match, not both" };
  if (ifNoneMatch !== undefined)
    return ifNoneMatch.trim() === "*" ? 0 : { error: 'If-None-Match: only "*" (store only if absent) is supported' };
  if (ifMatch === undefined) return undefined;
  const m = /^"?([1-9]\d{0,15})"?$/.exec(String(ifMatch).trim());
  if (!m) return { error: 'If-Match: must be the ETag a GET of the resource answered, such as "3"' };
  return Number(m[1]);
}

/** The key a resource is stored under, and the document as stored (secret token names masked). */
export function storageForm(r: Resource): { kind: string; key: string; doc: Record<string, unknown> } {
  if (r.kind === "token" && isSecretToken(r)) {
    return {
      kind: r.kind,
      key: secretTokenKey(r.metadata.name),
      doc: { ...r, metadata: { ...r.metadata, name: REDACTED_NAME } },
    };
  }
  return { kind: r.kind, key: r.metadata.name, doc: r as unknown as Record<string, unknown> };
}

/** A failed condition for people, never naming a secret token (its key is the hash of its name). */
function revisionMessage(e: RevisionMismatch): string {
  const what = `${e.kind} ${e.key.startsWith("sha256:") ? REDACTED_NAME : JSON.stringify(e.key)}`;
  if (e.expected === 0) return `${what} already exists`;
  if (e.actual === 0) return `${what} no longer exists`;
  return `${what} changed since it was read (revision ${e.actual}, not ${e.expected})`;
}

/** A checker of a secret: true when `given` equals `secret`, compared in constant time. */
export function secretMatcher(secret: string): (given: string) => boolean {
  // Hashes have one length, so the comparison takes the same time whatever the caller sent.
  const expected = crypto.createHash("sha256").update(secret).digest();
  return (given) => crypto.timingSafeEqual(crypto.createHash("sha256").update(given).digest(), expected);
}

/** The token of an `Authorization: Bearer <token>` header; empty when there is none. */
export function bearerToken(req: FastifyRequest): string {
  const header = req.headers.authorization ?? "";
  return header.startsWith("Bearer ") ? header.slice(7).trim() : "";
}

/** An onRequest hook answering 401 unless the request carries `Authorization: Bearer <adminToken>`. */
export function requireAdminToken(adminToken: string) {
  const isAdmin = secretMatcher(adminToken);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!isAdmin(bearerToken(req)))
      return reply
        .code(401)
        .send({ error: { code: "unauthorized", message: "a valid admin bearer token is required" } });
  };
}

/** A problem or warning of a request body as the API answers it: where in the body, and what. */
function located(p: SourceProblem) {
  return { line: p.line, col: p.col, path: p.path, message: p.message };
}

/** The admin API of SPEC §4: resources, nodes, enrollments and user certificates, behind the bearer token. */
export async function adminRoutes(
  app: FastifyInstance,
  opts: {
    store: Store;
    adminToken: string;
    metrics: RuntimeMetrics;
    taskTtlMs: number;
    now: () => Date;
    /** The runtime's discovery loop, if it runs one. */
    loop?: Pick<DiscoveryLoop, "busy" | "runNow">;
  },
): Promise<void> {
  const { store } = opts;
  app.addHook("onRequest", requireAdminToken(opts.adminToken));

  // Secret tokens are found by the hash of their name; everything else by name.
  const lookup = async (kind: string, name: string): Promise<StoredResource | undefined> =>
    (await store.getResource(kind, name)) ??
    (kind === "token" ? store.getResource(kind, secretTokenKey(name)) : undefined);

  app.put("/v1/resources", async (req, reply) => {
    const text = typeof req.body === "string" ? req.body : JSON.stringify(req.body ?? null);
    const { resources, problems, warnings } = parseDocuments(text, "request");
    if (problems.length)
      return badRequest(reply, `${problems.length} problem${problems.length === 1 ? "" : "s"}; nothing was stored`, {
        problems: problems.map(located),
      });
    if (resources.length === 0) return badRequest(reply, "the body holds no documents; nothing was stored");
    const ifRevision = requestedRevision(req);
    if (typeof ifRevision === "object") return badRequest(reply, ifRevision.error);
    if (ifRevision !== undefined && ifRevision > 0 && resources.length > 1)
      return badRequest(reply, "If-Match names one revision: send one document; nothing was stored");
    let stored: StoredResource[];
    try {
      stored = await store.putResources(resources.map((r) => ({ ...storageForm(r), ifRevision })));
    } catch (err) {
      if (!(err instanceof RevisionMismatch)) throw err;
      return preconditionFailed(reply, revisionMessage(err));
    }
    return {
      resources: stored.map((s) => ({
        kind: s.kind,
        name: (s.doc.metadata as { name: string }).name,
        revision: s.revision,
      })),
      // Stored all the same: what is worth a look, such as a region this version does not know.
      ...(warnings.length ? { warnings: warnings.map(located) } : {}),
    };
  });

  app.get<{ Params: { kind: string } }>("/v1/resources/:kind", async (req, reply) => {
    if (!(req.params.kind in KINDS))
      return notFound(reply, `unknown kind ${req.params.kind}; kinds: ${Object.keys(KINDS).join(", ")}`);
    // Secret tokens are never listed.
    return { resources: await listResourceViews(store, req.params.kind) };
  });

  app.get<{ Params: { kind: string; name: string } }>("/v1/resources/:kind/:name", async (req, reply) => {
    const found = await lookup(req.params.kind, req.params.name);
    if (!found) return notFound(reply, `no ${req.params.kind} of that name`);
    // The revision, for a write or delete conditional on the document being the one read (If-Match).
    reply.header("etag", `"${found.revision}"`);
    return found.kind === "discovery_config" ? withStatus(found, await store.listDiscoveryStatus()) : found.doc;
  });

  app.get("/v1/tasks", async () => ({ tasks: await listOpenTasks(store, opts.now(), opts.taskTtlMs) }));

  app.delete<{ Params: { kind: string; name: string } }>("/v1/resources/:kind/:name", async (req, reply) => {
    const ifRevision = requestedRevision(req);
    if (typeof ifRevision === "object") return badRequest(reply, ifRevision.error);
    if (ifRevision === 0) return badRequest(reply, "If-None-Match does not apply to a delete");
    const found = await lookup(req.params.kind, req.params.name);
    if (!found) return notFound(reply, `no ${req.params.kind} of that name`);
    if (!(await store.deleteResource(found.kind, found.key, ifRevision))) {
      if (ifRevision === undefined) return notFound(reply, `no ${req.params.kind} of that name`);
      const now = (await store.getResource(found.kind, found.key))?.revision ?? 0;
      return preconditionFailed(reply, revisionMessage(new RevisionMismatch(found.kind, found.key, ifRevision, now)));
    }
    return { deleted: { kind: req.params.kind, name: found.key.startsWith("sha256:") ? REDACTED_NAME : found.key } };
  });

  app.get("/v1/nodes", async () => ({ nodes: await listNodeViews(store) }));

  app.get<{ Params: { name: string } }>("/v1/nodes/:name", async (req, reply) => {
    const node = (await listNodeViews(store)).find((n) => n.name === req.params.name);
    return node ?? notFound(reply, `no node ${JSON.stringify(req.params.name)}; list them with GET /v1/nodes`);
  });

  // Removes a node record: its certificate stays valid until it expires, but its instance may join again (as
  // `discovery enroll --reinstall` does, without clearing enrollment records). Audited.
  app.delete<{ Params: { name: string } }>("/v1/nodes/:name", async (req, reply) => {
    const name = req.params.name;
    if (!(await store.deleteNode(name)))
      return notFound(reply, `no node ${JSON.stringify(name)}; list them with GET /v1/nodes`);
    await store.appendAudit({
      at: opts.now().toISOString(),
      type: "node.removed",
      source: req.ip,
      node: name,
      reason: "removed by an admin; its instance may join again",
    });
    return { deleted: { kind: "node", name } };
  });

  // Passes outside the runtime (discovery enroll) report the nodes whose instances they found gone or back.
  app.post<{ Body: Record<string, unknown> }>("/v1/nodes/staleness", async (req, reply) => {
    const b = req.body ?? {};
    for (const f of ["stale", "active", "remove"])
      if (b[f] !== undefined && !(Array.isArray(b[f]) && (b[f] as unknown[]).every((v) => typeof v === "string")))
        return badRequest(reply, `${f}: must be a list of node names`);
    for (const f of ["at", "stale_before"])
      if (typeof b[f] !== "string" || Number.isNaN(Date.parse(b[f] as string)))
        return badRequest(reply, `${f}: must be an RFC 3339 time`);
    const list = (f: string) => (b[f] as string[] | undefined) ?? [];
    return applyNodeStaleness(
      store,
      {
        stale: list("stale"),
        active: list("active"),
        remove: list("remove"),
        at: b.at as string,
        staleBefore: b.stale_before as string,
      },
      req.ip,
    );
  });

  app.get("/v1/enrollments", async () => ({ enrollments: await store.listEnrollments() }));

  // Enrollment passes that run outside the runtime (discovery enroll, the Enrollment resource) claim and
  // record through these, under the same rule as the runtime's own loop, so no instance is installed twice.
  app.post<{ Body: { enrollment?: EnrollmentRecord; stale_ms?: number; retry_failed?: unknown } }>(
    "/v1/enrollments/claim",
    async (req, reply) => {
      const e = req.body?.enrollment;
      if (!isEnrollmentRecord(e)) return badRequest(reply, "enrollment: must be an enrollment record");
      const staleMs = typeof req.body.stale_ms === "number" ? req.body.stale_ms : 15 * 60_000;
      return { claimed: await storeBackend(store).claim(e, staleMs, { retryFailed: req.body.retry_failed === true }) };
    },
  );
  app.put<{ Body: { enrollments?: unknown[] } }>("/v1/enrollments", async (req, reply) => {
    const list = req.body?.enrollments;
    if (!Array.isArray(list) || !list.every(isEnrollmentRecord))
      return badRequest(reply, "enrollments: must be a list of enrollment records");
    for (const e of list) await store.upsertEnrollment(e);
    return { recorded: list.length };
  });
  app.post<{ Body: Record<string, unknown> }>("/v1/enrollments/reinstall", async (req, reply) => {
    const b = req.body ?? {};
    if (typeof b.cloud !== "string" || !(CLOUDS as readonly string[]).includes(b.cloud))
      return badRequest(reply, `cloud: must be one of ${CLOUDS.join(", ")}`);
    if (typeof b.instance_id !== "string" || b.instance_id === "")
      return badRequest(reply, "instance_id: is required (the instance to install on again)");
    for (const f of ["account", "region"])
      if (b[f] !== undefined && (typeof b[f] !== "string" || b[f] === ""))
        return badRequest(reply, `${f}: must be a non-empty string when given`);
    try {
      const r = await reinstallInstance(
        store,
        {
          cloud: b.cloud as Cloud,
          instanceId: b.instance_id,
          account: b.account as string,
          region: b.region as string,
        },
        { source: req.ip },
      );
      return { instance_id: r.instanceId, nodes_removed: r.nodesRemoved, enrollments_cleared: r.enrollmentsCleared };
    } catch (err) {
      if (!(err instanceof ReinstallRefusal)) throw err;
      return reply
        .code(err.status)
        .send({ error: { code: err.status === 404 ? "not_found" : "conflict", message: err.message } });
    }
  });
  // The loop's next pass, started now, installs on failed instances without waiting out their backoff.
  app.post("/v1/enrollments/retry", async (req, reply) => {
    const loop = opts.loop;
    if (!loop)
      return reply.code(409).send({
        error: {
          code: "no_discovery_loop",
          message:
            "this runtime runs no discovery loop (its config has no discovery_service with matchers or a " +
            "discovery_group); retry from where the pass runs: `discovery enroll --config FILE --once --retry-failed`",
        },
      });
    const at = opts.now();
    const backingOff = (await store.listEnrollments()).filter((e) => {
      const next = (e.detail as EnrollmentDetail | undefined)?.nextAttemptAt;
      return e.status === "failed" && !!next && Date.parse(next) > at.getTime();
    }).length;
    const pass = loop.busy ? "queued" : "started";
    void loop.runNow({ retryFailed: true });
    await store.appendAudit({
      at: at.toISOString(),
      type: "enrollment.retry",
      source: req.ip,
      reason: `an admin asked the discovery loop to retry failed instances now (${backingOff} backing off)`,
    });
    return reply.code(202).send({ pass, backing_off: backingOff });
  });
  app.get("/v1/audit", async () => ({ events: await store.listAudit(500) }));

  app.get("/v1/cas", async () => listCaViews(store));

  // A rotation starts with a fresh signing key while the old one stays trusted (joins hand out both), and
  // completes once certificates are reissued; the store's revision check keeps two replicas from racing.
  app.post<{ Params: { type: string }; Body: { action?: string; force?: unknown } }>(
    "/v1/cas/:type/rotation",
    async (req, reply) => {
      const type = req.params.type;
      if (type !== "host" && type !== "user") return notFound(reply, "certificate authorities are host and user");
      const action = req.body?.action;
      if (action !== "start" && action !== "complete")
        return badRequest(reply, 'action: must be "start" or "complete"');
      const force = req.body?.force;
      if (force !== undefined && typeof force !== "boolean") return badRequest(reply, "force: must be true or false");
      const ca = await store.getCertAuthority(type);
      if (!ca) throw new Error(`the ${type} certificate authority is not initialized`);
      if (action === "complete" && ca.previous.length > 0 && !force) {
        // Completing drops the old key: nodes still on it would stop being trusted (host) or stop trusting users.
        const { pending } = await rotationProgress(store, ca);
        if (pending.length > 0)
          return reply.code(409).send({
            error: {
              code: "rotation_incomplete",
              message:
                `${pending.length} node(s) still depend on the old ${type} CA key: ` +
                `${pending
                  .slice(0, 20)
                  .map((p) => p.node)
                  .join(", ")}${pending.length > 20 ? ", ..." : ""}; ` +
                'let the next discovery pass re-run their installers, or send {"action":"complete","force":true}',
              nodes: pending,
            },
          });
      }
      let next;
      try {
        next = action === "start" ? startRotation(ca) : completeRotation(ca);
      } catch (err) {
        if (err instanceof CertAuthorityError)
          return reply.code(409).send({ error: { code: err.code, message: err.message } });
        throw err;
      }
      if (!(await store.updateCertAuthority(next)))
        return reply.code(409).send({ error: { code: "conflict", message: "the CA changed meanwhile; retry" } });
      return { type, public_keys: trustedPublicKeys(next), rotating: next.previous.length > 0 };
    },
  );

  app.post("/v1/certs/user", async (req, reply) => {
    const b = (req.body ?? {}) as { public_key?: unknown; principals?: unknown; ttl?: unknown };
    if (typeof b.public_key !== "string")
      return badRequest(reply, "public_key: is required (an OpenSSH public key line)");
    if (!Array.isArray(b.principals) || b.principals.length === 0 || !b.principals.every((p) => typeof p === "string"))
      return badRequest(reply, "principals: must be a non-empty list of login names");
    const ttlMs = parseDuration(typeof b.ttl === "string" ? b.ttl : "1h");
    if (ttlMs === undefined || ttlMs <= 0 || ttlMs > MAX_USER_CERT_TTL_MS)
      return badRequest(reply, "ttl: must be a duration such as 1h, at most 720h");
    const ca = await store.getCertAuthority("user");
    if (!ca) throw new Error("the user certificate authority is not initialized");
    let certificate: string;
    try {
      certificate = signUserCertificate(ca, {
        publicKey: b.public_key,
        principals: b.principals as string[],
        ttlSeconds: Math.floor(ttlMs / 1000),
        keyId: `user:${(b.principals as string[]).join(",")}`,
      });
    } catch (err) {
      return badRequest(reply, (err as Error).message);
    }
    return { certificate, expires_at: new Date(Date.now() + ttlMs).toISOString() };
  });
}
