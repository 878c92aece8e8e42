import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { z } from "zod";
import {
  discoveryServiceSection,
  DiscoveryServiceSection,
  duration,
  fieldError,
  parseDuration,
  formatProblem,
  matcherWarnings,
  parseYamlWith,
  SourceProblem,
  zodErrorMap,
  zodProblems,
} from "../model";
import { MAX_CERT_TTL_SECONDS } from "../ssh";

/** The levels `log_level` accepts, most verbose first (pino's). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** How long audit events are kept when the config says nothing: 30 days. */
export const DEFAULT_AUDIT_RETENTION = "720h";

/** How long a status page login lasts when the config says nothing. */
export const DEFAULT_STATUS_SESSION_TTL = "12h";

/** Host certificate lifetime when the config says nothing: the longest we issue. */
export const DEFAULT_CERTIFICATE_TTL = `${MAX_CERT_TTL_SECONDS / 3600}h`;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: "must be host:port such as 127.0.0.1:3080" });

// Whole seconds (an OpenSSH certificate's validity is in seconds) and at most what the CA will sign.
const certificateTtl = duration.superRefine((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) return; // `duration` has said why
  if (ms % 1000 !== 0)
    ctx.addIssue({ code: "custom", message: "must be a whole number of seconds, such as 90s or 24h" });
  else if (ms / 1000 > MAX_CERT_TTL_SECONDS)
    ctx.addIssue({
      code: "custom",
      message: `must be at most ${DEFAULT_CERTIFICATE_TTL} (30 days): a longer-lived certificate outlasts a CA rotation`,
    });
});

const runtimeConfigSchema = z
  .object({
    version: z.literal("v1", fieldError('runtime configs are version "v1"')),
    cluster_name: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,252}$/, {
      message: "must be a DNS-style name such as discovery.local",
    }),
    log_level: z.enum(LOG_LEVELS, fieldError(`must be one of ${LOG_LEVELS.join(", ")}`)).optional(),
    listen_addr: hostPort.optional(),
    public_addr: z
      .string()
      .url({ message: "must be an https URL such as https://discovery.example.com:3080" })
      .refine((u) => u.startsWith("https://"), { message: "must be an https URL: nodes send identities to it" }),
    tls: z
      .object({ cert_file: z.string().min(1), key_file: z.string().min(1) })
      .strict()
      .optional(),
    storage: z
      .discriminatedUnion("type", [
        z.object({ type: z.literal("sqlite"), path: z.string().min(1) }).strict(),
        z
          .object({
            type: z.literal("postgres"),
            url: z.string().regex(/^postgres(ql)?:\/\//, { message: "must be a postgres:// URL" }),
          })
          .strict(),
      ])
      .optional(),
    admin_token_file: z.string().min(1).optional(),
    certificate_authorities: z
      .object({ host_key_file: z.string().min(1).optional(), user_key_file: z.string().min(1).optional() })
      .strict()
      .optional(),
    join: z
      .object({
        aws: z
          .object({
            extra_ca_certs: z.array(z.string().min(1)).optional(),
            sts_endpoint: z.string().url({ message: "must be a URL such as https://sts.amazonaws.com" }).optional(),
          })
          .strict()
          .optional(),
        gcp: z
          .object({ issuer: z.string().url().optional(), jwks_url: z.string().url().optional() })
          .strict()
          .optional(),
        azure: z
          .object({
            extra_ca_certs: z
              .array(z.string().min(1, { message: "must be the path of a PEM file of CA certificates" }))
              .optional(),
            jwks_url: z
              .string()
              .url({ message: "must be a URL such as https://login.microsoftonline.com/common/discovery/keys" })
              .regex(/^https?:\/\//, {
                message: "must be an https:// URL such as https://login.microsoftonline.com/common/discovery/keys",
              })
              .optional(),
          })
          .strict()
          .optional(),
        rate_limit: z
          .object({
            requests_per_minute: z.number().int().positive().max(1_000_000),
            burst: z.number().int().positive().max(1_000_000),
          })
          .strict()
          .optional(),
        certificate_ttl: certificateTtl.optional(),
      })
      .strict()
      .optional(),
    audit: z.object({ retention: duration.optional() }).strict().optional(),
    metrics: z.object({ require_admin_token: z.boolean().optional() }).strict().optional(),
    status_page: z
      .object({
        viewer_token_file: z
          .string()
          .min(1, { message: "must be the path of a file holding the read-only viewer token" })
          .optional(),
        session_ttl: duration
          .refine((v) => (parseDuration(v) ?? 0) <= 7 * 24 * 3600_000, {
            message: "must be at most 168h: a stolen session cookie should not outlive a week",
          })
          .optional(),
      })
      .strict()
      .optional(),
    discovery_service: discoveryServiceSection.optional(),
  })
  .strict();

/** The runtime's configuration with defaults applied and paths made absolute. */
export interface RuntimeConfig {
  /** The config file, when the config was read from one: errors about its values name it. */
  file?: string;
  /** Directory of the config file; relative paths in it are relative to this. */
  baseDir: string;
  clusterName: string;
  /** `log_level`: the least severe level written (default info). */
  logLevel: LogLevel;
  listenAddr: { host: string; port: number };
  publicAddr: string;
  /** host:port of publicAddr, as installers reach it. */
  publicHostPort: string;
  tls?: { certFile: string; keyFile: string };
  storage: { type: "sqlite"; path: string } | { type: "postgres"; url: string };
  adminTokenFile: string;
  /** OpenSSH Ed25519 private keys the host and user CAs start from when the store has none yet. */
  caKeyFiles: { host?: string; user?: string };
  /** Where the runtime keeps files it makes (self-signed certificate). */
  dataDir: string;
  join: {
    aws: { extraCaCerts: string[]; stsEndpoint: string };
    gcp: { issuer: string; jwksUrl: string };
    /** `join.azure`: CA files trusted beside Azure's roots for attested documents, and Entra ID's key set. */
    azure: { extraCaCerts: string[]; jwksUrl: string };
    rateLimit: { requestsPerMinute: number; burst: number };
    /** Lifetime of the host certificates joins issue (`join.certificate_ttl`), at most MAX_CERT_TTL_SECONDS. */
    certificateTtlSeconds: number;
  };
  /** Audit events older than this are deleted (`audit.retention`). */
  audit: { retentionMs: number };
  /** `/metrics` answers only with the admin bearer token (`metrics.require_admin_token`). */
  metrics: { requireAdminToken: boolean };
  /** `status_page`: the read-only viewer token's file (made on first start when named) and the login lifetime. */
  statusPage: { viewerTokenFile?: string; sessionTtlMs: number };
  discoveryService?: DiscoveryServiceSection;
}

/** Thrown when a runtime config file is invalid; carries every located problem. */
export class ConfigError extends Error {
  constructor(public readonly problems: SourceProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
  }
}

/** Top-level keys only a runtime config (SPEC §3) has; neither a teleport.yaml nor a resource document has them. */
export const RUNTIME_CONFIG_KEYS = ["public_addr", "listen_addr", "cluster_name", "admin_token_file", "storage"];

/** Whether a parsed YAML document is a runtime config: a mapping without `kind` holding a runtime-only key. */
export function isRuntimeConfigValue(value: unknown): boolean {
  return (
    !!value &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    !("kind" in value) &&
    RUNTIME_CONFIG_KEYS.some((k) => k in value)
  );
}

function splitHostPort(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(":");
  return { host: v.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(v.slice(i + 1)) };
}

/** A runtime config checked: every problem and warning located, and the config when there is no problem. */
export interface RuntimeConfigCheck {
  config?: RuntimeConfig;
  problems: SourceProblem[];
  warnings: SourceProblem[];
}

/** Checks runtime config text: every problem of the document at its line, and warnings (unknown regions). */
export function checkRuntimeConfig(text: string, file: string): RuntimeConfigCheck {
  const { values, problems, warnings, documents } = parseYamlWith(
    text,
    file,
    (value) => {
      const r = runtimeConfigSchema.safeParse(value, { errorMap: zodErrorMap });
      if (!r.success) return { problems: zodProblems(r.error, runtimeConfigSchema) };
      const ds = r.data.discovery_service;
      return { value: r.data, problems: [], warnings: ds ? matcherWarnings(ds, ["discovery_service"]) : [] };
    },
    { splitLists: false },
  );
  if (problems.length) return { problems, warnings };
  if (documents !== 1)
    return {
      problems: [{ file, line: 1, col: 1, path: ["file"], message: "must hold exactly one YAML document" }],
      warnings,
    };
  return { config: runtimeConfigOf(values[0], file), problems: [], warnings };
}

/** Parses runtime config text; throws a ConfigError with every problem, each at its line. */
export function parseRuntimeConfig(text: string, file: string): RuntimeConfig {
  const { config, problems } = checkRuntimeConfig(text, file);
  if (!config) throw new ConfigError(problems);
  return config;
}

/** The config with defaults applied and paths made absolute against the file's directory. */
function runtimeConfigOf(c: z.output<typeof runtimeConfigSchema>, file: string): RuntimeConfig {
  const baseDir = path.dirname(path.resolve(file));
  const abs = (p: string) => path.resolve(baseDir, p);
  const publicUrl = new URL(c.public_addr);
  const storage =
    c.storage?.type === "postgres"
      ? { type: "postgres" as const, url: c.storage.url }
      : { type: "sqlite" as const, path: abs(c.storage?.path ?? "./data/discovery.db") };
  const adminTokenFile = abs(c.admin_token_file ?? "./data/admin.token");
  return {
    file,
    baseDir,
    clusterName: c.cluster_name,
    logLevel: c.log_level ?? "info",
    listenAddr: splitHostPort(c.listen_addr ?? "127.0.0.1:3080"),
    publicAddr: c.public_addr.replace(/\/$/, ""),
    publicHostPort: `${publicUrl.hostname}:${publicUrl.port || "443"}`,
    tls: c.tls ? { certFile: abs(c.tls.cert_file), keyFile: abs(c.tls.key_file) } : undefined,
    storage,
    adminTokenFile,
    caKeyFiles: {
      host: c.certificate_authorities?.host_key_file && abs(c.certificate_authorities.host_key_file),
      user: c.certificate_authorities?.user_key_file && abs(c.certificate_authorities.user_key_file),
    },
    dataDir: path.dirname(storage.type === "sqlite" ? storage.path : adminTokenFile),
    join: {
      aws: {
        extraCaCerts: (c.join?.aws?.extra_ca_certs ?? []).map(abs),
        stsEndpoint: c.join?.aws?.sts_endpoint ?? "https://sts.amazonaws.com",
      },
      gcp: {
        issuer: c.join?.gcp?.issuer ?? "https://accounts.google.com",
        jwksUrl: c.join?.gcp?.jwks_url ?? "https://www.googleapis.com/oauth2/v3/certs",
      },
      azure: {
        extraCaCerts: (c.join?.azure?.extra_ca_certs ?? []).map(abs),
        jwksUrl: c.join?.azure?.jwks_url ?? "https://login.microsoftonline.com/common/discovery/keys",
      },
      rateLimit: {
        requestsPerMinute: c.join?.rate_limit?.requests_per_minute ?? 120,
        burst: c.join?.rate_limit?.burst ?? 60,
      },
      certificateTtlSeconds: parseDuration(c.join?.certificate_ttl ?? DEFAULT_CERTIFICATE_TTL)! / 1000,
    },
    audit: { retentionMs: parseDuration(c.audit?.retention ?? DEFAULT_AUDIT_RETENTION)! },
    metrics: { requireAdminToken: c.metrics?.require_admin_token ?? false },
    statusPage: {
      viewerTokenFile: c.status_page?.viewer_token_file && abs(c.status_page.viewer_token_file),
      sessionTtlMs: parseDuration(c.status_page?.session_ttl ?? DEFAULT_STATUS_SESSION_TTL)!,
    },
    discoveryService: c.discovery_service,
  };
}

/** Reads and parses a runtime config file. */
export function loadRuntimeConfig(file: string): RuntimeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([
      { file, line: 1, col: 1, path: ["file"], message: `cannot read: ${(err as Error).message}` },
    ]);
  }
  return parseRuntimeConfig(text, file);
}

/**
 * The PEM text of CA files a config names (`field`, e.g. `join.azure.extra_ca_certs`), read when the runtime
 * starts: a missing file, or one without a certificate, is an error naming the field and the file, not a refusal
 * at the first join.
 */
export function readCaFiles(files: string[], field: string): string[] {
  return files.map((file, i) => {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`${field}[${i}]: cannot read ${file}: ${(err as Error).message}`);
    }
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    const bad = blocks.findIndex((b) => !parsesAsCertificate(b));
    if (!blocks.length || bad >= 0)
      throw new Error(
        `${field}[${i}]: ${file} ${blocks.length ? `holds a certificate (number ${bad + 1}) that does not parse` : "holds no PEM certificate"}; name a PEM file of CA certificates`,
      );
    return text;
  });
}

function parsesAsCertificate(pem: string): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}
