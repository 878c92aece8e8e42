import { randomUUID, timingSafeEqual, verify } from "crypto";
import type * as http from "http";
import type { GcpIssuer } from "./gcp-issuer";
import type { JsonReply } from "./azure-https";

/** The sandbox's Entra ID tenant and the one application allowed to get tokens from it. */
export interface EntraTenant {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** The application's service principal (`oid` of its tokens). */
  objectId: string;
}

/** The claims of a verified access token that ARM reads. */
export interface AccessTokenClaims {
  aud: string;
  oid: string;
  appid: string;
  tid: string;
  exp: number;
}

const TOKEN_TTL_S = 3599;

/** `https://sts.windows.net/<tenant>/`: the issuer of Entra ID's v1 access tokens (ARM's). */
export const entraIssuer = (tenantId: string) => `https://sts.windows.net/${tenantId}/`;

function aadError(status: number, error: string, code: number, description: string): JsonReply {
  const trace = randomUUID();
  return [
    status,
    {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${trace} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString().replace("T", " ").slice(0, 19)}Z`, // prettier-ignore
      error_codes: [code],
      timestamp: new Date().toISOString(),
      trace_id: trace,
    },
  ];
}

const equal = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/**
 * The fake Entra ID: for tenant T, `GET /T/v2.0/.well-known/openid-configuration`, `POST /T/oauth2/v2.0/token`
 * (client credentials of the sandbox's application only; the token is for the requested `scope`'s resource) and
 * `GET /common/discovery/keys` (the JWKS listing the issuer key). `endpoint` is the server's own origin, which the
 * discovery document must name (MSAL checks its issuer against the authority).
 */
export function entraHandler(tenant: EntraTenant, issuer: GcpIssuer, endpoint: () => string) {
  return (req: http.IncomingMessage, raw: string): JsonReply => {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const method = req.method ?? "GET";
    if (method === "GET" && /^\/(common|[^/]+)\/discovery(\/v2\.0)?\/keys$/.test(url.pathname))
      return [200, issuer.jwks, { "cache-control": "max-age=86400, private" }];
    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(url.pathname);
    if (!m) return [404, { error: "not_found", error_description: `no such endpoint: ${method} ${url.pathname}` }];
    const [, t, what] = m;
    const known = t === tenant.tenantId || t === "organizations" || t === "common";
    if (!known) return aadError(400, "invalid_tenant", 90002, `Tenant '${t}' not found.`);
    const base = `${endpoint()}/${t}`;
    if (what.startsWith("v2.0") && method === "GET")
      return [
        200,
        {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
          jwks_uri: `${endpoint()}/${t}/discovery/v2.0/keys`,
          response_modes_supported: ["query", "fragment", "form_post"],
          subject_types_supported: ["pairwise"],
          id_token_signing_alg_values_supported: ["RS256"],
          response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
          scopes_supported: ["openid", "profile", "email", "offline_access"],
          issuer: `${endpoint()}/${tenant.tenantId}/v2.0`,
          request_uri_parameter_supported: false,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          tenant_region_scope: "NA",
          cloud_instance_name: "microsoftonline.com",
        },
      ];
    if (method !== "POST") return [405, { error: "invalid_request", error_description: "use POST" }];
    const form = new URLSearchParams(raw);
    if (form.get("grant_type") !== "client_credentials")
      return aadError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    let clientId = form.get("client_id") ?? "";
    let secret = form.get("client_secret") ?? "";
    const basic = /^Basic (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (basic) [clientId, secret] = Buffer.from(basic, "base64").toString().split(":").map(decodeURIComponent);
    if (clientId !== tenant.clientId)
      return aadError(400, "unauthorized_client", 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant.tenantId}'.`); // prettier-ignore
    if (!equal(secret, tenant.clientSecret))
      return aadError(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."); // prettier-ignore
    const scope = (form.get("scope") ?? "").split(" ").find((s) => s.endsWith("/.default"));
    if (!scope) return aadError(400, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."); // prettier-ignore
    const iat = Math.floor(Date.now() / 1000);
    const access = issuer.sign({
      aud: scope.slice(0, -"/.default".length),
      iat,
      nbf: iat,
      exp: iat + TOKEN_TTL_S,
      appid: tenant.clientId,
      appidacr: "1",
      idp: entraIssuer(tenant.tenantId),
      idtyp: "app",
      oid: tenant.objectId,
      sub: tenant.objectId,
      tid: tenant.tenantId,
      ver: "1.0",
    });
    return [200, { token_type: "Bearer", expires_in: TOKEN_TTL_S, ext_expires_in: TOKEN_TTL_S, access_token: access }];
  };
}

/**
 * The claims of `token` when the issuer signed it (RS256 under its key id), it has not expired and its audience is
 * one of `audiences` (ARM accepts its own URL with or without the trailing slash); undefined otherwise.
 */
export function verifyAccessToken(
  token: string,
  issuer: GcpIssuer,
  audiences: string[],
  now = Date.now(),
): AccessTokenClaims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
    if (header.alg !== "RS256" || header.kid !== issuer.kid) return undefined;
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    if (!verify("sha256", signed, issuer.publicKey, Buffer.from(parts[2], "base64url"))) return undefined;
    const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString()) as AccessTokenClaims;
    const strip = (a: string) => a.replace(/\/+$/, "").toLowerCase();
    if (!audiences.map(strip).includes(strip(String(claims.aud)))) return undefined;
    if (typeof claims.exp !== "number" || claims.exp * 1000 <= now) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
