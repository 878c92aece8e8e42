import * as crypto from "crypto";
import * as fs from "fs";
import type * as https from "https";
import * as path from "path";
import Fastify, { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import pino, { Logger } from "pino";
import { JoinRefusal } from "../join/errors";
import { JoinService, type JoinServiceOptions } from "../join/service";
import { CertificateRequestError, generateCertAuthority } from "../ssh";
import { adminRoutes, requireAdminToken } from "./admin-routes";
import { MAX_BODY_DEPTH, nestingDepth } from "./body-depth";
import { readCaFiles, RuntimeConfig } from "./config";
import { assertPrivateFiles, makePrivateDir, writePrivateFile } from "./file-modes";
import { startHousekeeping } from "./housekeeping";
import { statusPage } from "./status";
import { builtinInstallers, isInstallerName, renderInstaller } from "./installers";
import { shellQuote } from "../util/shell";
import { LogSampler } from "./log-sampler";
import { RuntimeMetrics } from "./metrics";
import { CLOUDS, DEFAULT_POLL_INTERVAL, parseDuration } from "../model";
import { DiscoveryLoop, DiscoveryLoopOptions } from "./discovery-loop";
import { EventConsumer } from "./events";
import { cloudEventQueues } from "../clouds";
import { openStore } from "./store";
import type { Store } from "./store/types";
import { loadOrCreateTls, TlsMaterial } from "./tls";

/** A running runtime. */
export interface Runtime {
  /** https://host:port it listens on. */
  url: string;
  store: Store;
  tls: TlsMaterial;
  adminToken: string;
  logger: Logger;
  app: FastifyInstance<https.Server>;
  /** The discovery loop, when the config has a discovery_service with matchers or a discovery_group. */
  loop?: DiscoveryLoop;
  /** `discovery/discovered-by` of the nodes this runtime's loop installs: `<cluster>/<id kept in the data dir>`. */
  runtimeId: string;
  close(): Promise<void>;
}

/** The version reported by /webapi/ping. */
export const SERVER_VERSION: string = (() => {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const f = path.join(dir, "package.json");
    if (fs.existsSync(f)) {
      const pkg = JSON.parse(fs.readFileSync(f, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "pulumi-discovery") return pkg.version ?? "0.0.0";
    }
  }
  return "0.0.0";
})();

/** Reads a bearer token (admin, viewer), or makes one and writes it with mode 0600 on first start. */
export function loadOrCreateToken(file: string): string {
  if (fs.existsSync(file)) {
    const token = fs.readFileSync(file, "utf8").trim();
    if (token.length < 32)
      throw new Error(`${file} holds a token shorter than 32 characters; delete it to make a new one`);
    return token;
  }
  const token = crypto.randomBytes(32).toString("base64url");
  writePrivateFile(file, token + "\n");
  return token;
}

/**
 * This runtime's id: the cluster name and a random id made on first start and kept in `DATA_DIR/runtime-id`, so it
 * survives restarts and differs between replicas sharing one database (each has its own data dir).
 */
export function loadOrCreateRuntimeId(dataDir: string, clusterName: string): string {
  const file = path.join(dataDir, "runtime-id");
  let id = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
  if (!/^[0-9a-f]{8,32}$/.test(id)) {
    id = crypto.randomBytes(6).toString("hex");
    writePrivateFile(file, id + "\n");
  }
  return `${clusterName}/${id}`;
}

/** A URL fit for logs: the names in token paths may be secrets (token-method tokens), so they are masked. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/v1\/resources\/token\/)[^?]*/, "$1(redacted)");
}

/** Sends a refusal in SPEC's error shape; the precise refusal code rides along as `reason`. */
export function sendRefusal(reply: FastifyReply, err: JoinRefusal): FastifyReply {
  const code = err.status === 403 ? "access_denied" : err.status === 429 ? "rate_limited" : "bad_request";
  return reply.code(err.status).send({ error: { code, message: err.reason, reason: err.code } });
}

/** The runtime's logger: JSON lines (pino) at the config's `log_level`, to `destination` (default stdout). */
export function runtimeLogger(config: Pick<RuntimeConfig, "logLevel">, destination?: pino.DestinationStream): Logger {
  return pino({ name: "discovery", level: config.logLevel }, destination);
}

/** Options of startRuntime beyond the config: injected for tests. */
export interface RuntimeOptions {
  logger?: Logger;
  /** The clock of joins, challenges and housekeeping. */
  now?: () => Date;
  /** Time between housekeeping passes (expired challenges, audit retention); default one minute. */
  housekeepingIntervalMs?: number;
  /** Overrides of the discovery loop's timings and clouds. */
  discovery?: Pick<DiscoveryLoopOptions, "watchIntervalMs" | "debounceMs" | "joinTimeoutMs" | "clouds">;
  /** Join methods over the registered ones (tests of a method no cloud registers yet). */
  joinMethods?: JoinServiceOptions["methods"];
}

/** Starts the runtime: store, certificate authorities, TLS, and the HTTP API of SPEC §4. */
export async function startRuntime(config: RuntimeConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const logger = opts.logger ?? runtimeLogger(config);
  const now = opts.now ?? (() => new Date());
  // Before anything is opened or written: a secret other users can read is refused, not used.
  assertPrivateFiles(config);
  makePrivateDir(config.dataDir);
  const store = await openStore(config.storage);
  for (const type of ["host", "user"] as const) {
    if (!(await store.getCertAuthority(type))) await store.initCertAuthority(generateCertAuthority(type));
  }
  const adminToken = loadOrCreateToken(config.adminTokenFile);
  const viewerToken = config.statusPage.viewerTokenFile && loadOrCreateToken(config.statusPage.viewerTokenFile);
  if (viewerToken === adminToken)
    throw new Error(
      `status_page.viewer_token_file: ${config.statusPage.viewerTokenFile} holds the admin token; a viewer token must differ (delete the file to make one)`,
    );
  const tls = await loadOrCreateTls({
    tls: config.tls,
    dataDir: config.dataDir,
    clusterName: config.clusterName,
    hosts: [new URL(config.publicAddr).hostname, config.listenAddr.host],
  });
  if (!config.tls)
    logger.info(
      { fingerprint: tls.fingerprint, pin: tls.publicKeyPin, certFile: tls.certFile },
      "self-signed TLS certificate",
    );

  const metrics = new RuntimeMetrics(store);
  const housekeeping = await startHousekeeping({
    store,
    metrics,
    logger: logger.child({ component: "housekeeping" }),
    auditRetentionMs: config.audit.retentionMs,
    intervalMs: opts.housekeepingIntervalMs,
    now,
  });
  // A 429 costs its sender nothing: it gets no audit row and at most one log line per source a minute.
  const rateLimitLog = new LogSampler();
  const readinessLog = new LogSampler();
  const joins = new JoinService({
    store,
    clusterName: config.clusterName,
    settings: {
      aws: {
        extraCaPems: config.join.aws.extraCaCerts.map((f) => fs.readFileSync(f, "utf8")),
        stsEndpoint: config.join.aws.stsEndpoint,
        enrollmentRegion: async (account, instanceId) =>
          (await store.enrollmentsOfNode(`${account}-${instanceId}`)).find(
            (e) => e.cloud === "aws" && e.account === account && e.instanceId === instanceId,
          )?.region,
      },
      gcp: config.join.gcp,
      azure: {
        extraCaPems: readCaFiles(config.join.azure.extraCaCerts, "join.azure.extra_ca_certs"),
        jwksUrl: config.join.azure.jwksUrl,
      },
    },
    methods: opts.joinMethods,
    rateLimit: config.join.rateLimit,
    certificateTtlSeconds: config.join.certificateTtlSeconds,
    now,
    onEvent: async (e, audited) => {
      metrics.joinEvent(e);
      if (e.code === "rate_limited") {
        const sample = rateLimitLog.take(e.source);
        if (sample === "log")
          logger.warn(
            { source: e.source },
            "rate limited: answering 429; further 429s to this source this minute are not logged",
          );
        else if (sample === "overflow")
          logger.warn("rate limiting many sources; no more are logged this minute (see /metrics, reason rate_limited)");
        return;
      }
      if (e.type.endsWith("refused")) logger.warn({ audit: e }, `${e.type}: ${e.reason}`);
      else logger.info({ audit: e }, e.type);
      if (!audited) await store.appendAudit({ at: now().toISOString(), ...e });
    },
  });

  const app = Fastify({
    loggerInstance: logger.child(
      { component: "http" },
      {
        serializers: {
          req: (req: FastifyRequest) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }),
        },
      },
    ) as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    https: { cert: tls.cert, key: tls.key },
    trustProxy: false,
    // Errors the router raises before any handler (a URL that is not valid percent-encoding, a path segment
    // over the length limit) get SPEC's error shape like every other refusal.
    frameworkErrors: (err, _req, reply) =>
      sendRefusal(reply, new JoinRefusal("malformed_request", err.message, err.statusCode === 414 ? 414 : 400)),
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: { code: "not_found", message: `no route ${req.method} ${redactUrl(req.url).slice(0, 200)}` } }),
  );
  const tooDeep = () =>
    new JoinRefusal("body_too_deep", `the request body nests deeper than ${MAX_BODY_DEPTH} levels`, 400);
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) =>
    nestingDepth(body as string) > MAX_BODY_DEPTH ? done(tooDeep(), undefined) : json(req, body as string, done),
  );
  app.addContentTypeParser(
    ["application/yaml", "text/yaml", "application/x-yaml", "text/plain"],
    { parseAs: "string" },
    (_req, body, done) =>
      nestingDepth(body as string) > MAX_BODY_DEPTH ? done(tooDeep(), undefined) : done(null, body),
  );
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof JoinRefusal) return sendRefusal(reply, err);
    // A certificate request built from a client's input: the client's fault, named by its field.
    if (err instanceof CertificateRequestError) return sendRefusal(reply, new JoinRefusal(err.code, err.message, 400));
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE")
      return sendRefusal(reply, new JoinRefusal("body_too_large", "the request body is larger than 64 KiB", 400));
    if (err.statusCode && err.statusCode < 500)
      return sendRefusal(reply, new JoinRefusal("malformed_request", err.message, 400));
    logger.error({ err }, "request failed");
    return reply.code(500).send({ error: { code: "internal", message: "internal error; see the runtime log" } });
  });

  app.get("/webapi/ping", async () => ({
    cluster_name: config.clusterName,
    server_version: SERVER_VERSION,
    public_addr: config.publicAddr,
  }));
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    try {
      await store.getCertAuthority("host");
      return { status: "ready" };
    } catch (err) {
      // Store errors name hosts, users and files: they go to the log (once a minute), not to whoever asks.
      if (readinessLog.take("store") === "log") logger.error({ err }, "not ready: the store did not answer");
      return reply.code(503).send({ status: "not ready", reason: "the store is not reachable; see the runtime log" });
    }
  });
  app.get(
    "/metrics",
    { onRequest: config.metrics.requireAdminToken ? [requireAdminToken(adminToken)] : [] },
    async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );

  const installer = async (req: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
    const { name } = req.params;
    // The pattern is checked before any lookup: no path, no traversal, no other key reaches the store.
    const none = () =>
      reply
        .code(404)
        .send({ error: { code: "not_found", message: "no such installer; names match [a-z0-9][a-z0-9._-]{0,62}" } });
    if (!isInstallerName(name)) return none();
    const stored = await store.getResource("installer", name);
    const script = (stored?.doc.spec as { script?: string } | undefined)?.script ?? builtinInstallers().get(name);
    if (!script) return none();
    const body = renderInstaller(script, { PublicProxyAddr: config.publicHostPort, ClusterName: config.clusterName });
    return reply.type("text/plain; charset=utf-8").header("cache-control", "no-store").send(body);
  };
  app.get("/webapi/scripts/installer/:name", installer);
  app.get("/v1/webapi/scripts/installer/:name", installer);

  app.post("/v1/join/challenge", async (req) => joins.challenge(req.body, req.ip));
  app.post("/v1/join", async (req) => joins.join(req.body, req.ip));

  const ds = config.discoveryService;
  const pollMs = parseDuration(ds?.poll_interval ?? DEFAULT_POLL_INTERVAL) ?? 300_000;
  const runtimeId = loadOrCreateRuntimeId(config.dataDir, config.clusterName);
  // Made before the routes (the admin API asks it to retry failed instances), started once the server listens.
  const loop =
    ds && ds.enabled && (ds.dynamic || CLOUDS.some((c) => ds[c].length > 0))
      ? new DiscoveryLoop({
          section: ds,
          store,
          endpoint: { proxyAddr: config.publicHostPort, caPin: tls.publicKeyPin },
          logger: logger.child({ component: "discovery" }),
          runtimeId,
          metrics,
          ...opts.discovery,
        })
      : undefined;
  // A task not seen for two polls is gone (the instance was terminated, or the matcher no longer selects it).
  await app.register(adminRoutes, { store, adminToken, metrics, taskTtlMs: 2 * pollMs, now, loop });
  await app.register(statusPage, {
    store,
    adminToken,
    viewerToken: viewerToken || undefined,
    sessionTtlMs: config.statusPage.sessionTtlMs,
    taskTtlMs: 2 * pollMs,
    clusterName: config.clusterName,
    logger: logger.child({ component: "status" }),
    now,
  });
  await app.listen({ host: config.listenAddr.host, port: config.listenAddr.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.listenAddr.port;
  const host = config.listenAddr.host.includes(":") ? `[${config.listenAddr.host}]` : config.listenAddr.host;
  const url = `https://${host}:${port}`;
  // How an operator reaches it from a shell: the token file's path, never the token.
  const use =
    `export DISCOVERY_SERVER=${shellQuote(config.publicAddr)} DISCOVERY_ADMIN_TOKEN="$(cat ${shellQuote(config.adminTokenFile)})"` +
    (config.tls ? "" : ` NODE_EXTRA_CA_CERTS=${shellQuote(tls.certFile)}`);
  logger.info(
    {
      url,
      cluster: config.clusterName,
      storage: config.storage.type,
      adminTokenFile: config.adminTokenFile,
      ...(!config.tls && { pin: tls.publicKeyPin }),
      use,
    },
    "discovery runtime listening",
  );
  loop?.start();
  // The queues of discovery_service.events: a new instance is enrolled at once, the poll stays the safety net.
  const queues = loop && ds ? cloudEventQueues(ds.events) : [];
  const events =
    loop && queues.length > 0
      ? new EventConsumer({
          queues,
          target: loop,
          logger: logger.child({ component: "events" }),
        })
      : undefined;
  events?.start();
  return {
    url,
    store,
    tls,
    adminToken,
    logger,
    app,
    loop,
    runtimeId,
    close: async () => {
      await events?.stop();
      await loop?.stop();
      await app.close();
      await housekeeping.stop();
      await store.close();
    },
  };
}
