/**
 * Errors of a connection to the runtime, said so a person can act on them: what went wrong, where the value at
 * fault came from (a flag, an environment variable, a config file) and what to change. The CLI, the enrollment
 * pass and the Pulumi resources reach the runtime through the same client, so they all say it the same way.
 */

/** Where one setting of a runtime target came from, so an error names it and says how to change it. */
export interface SettingSource {
  /** As the user wrote it: `--server`, `DISCOVERY_SERVER`, `public_addr in /etc/discovery/runtime.yaml`. */
  from: string;
  /** What to do, e.g. `pass --server with the runtime's public_addr`. */
  fix: string;
}

/** Where the URL, the admin token and the trusted CA of a runtime target came from. */
export interface TargetSources {
  server?: SettingSource;
  adminToken?: SettingSource;
  ca?: SettingSource;
  pin?: SettingSource;
}

/** Where to find the runtime's certificate, for a client that must trust it. */
export const RUNTIME_CERTIFICATE_HINT =
  "the runtime's certificate is its tls.cert_file, or data/tls.crt beside its store when it made its own; " +
  "its startup line `discovery runtime listening` prints the path";

/** Where to find the admin token. */
export const ADMIN_TOKEN_HINT =
  "the token is in the runtime's admin_token_file (default data/admin.token beside its config); " +
  "its startup line `discovery runtime listening` prints the path";

const SERVER_DEFAULT: SettingSource = { from: "the runtime URL", fix: "use the runtime's public_addr" };
const CA_DEFAULT: SettingSource = {
  from: "this machine's CAs",
  fix: `trust the runtime's certificate: ${RUNTIME_CERTIFICATE_HINT}`,
};
const TOKEN_DEFAULT: SettingSource = { from: "the client", fix: `send the runtime's admin token: ${ADMIN_TOKEN_HINT}` };
const PIN_DEFAULT: SettingSource = { from: "the configured pin", fix: "pin the key the runtime presents" };

/** `(from X)`: the source of a setting, as a short parenthesis. */
function origin(s: SettingSource): string {
  return `(from ${s.from})`;
}

/** The runtime URL a user gave, parsed; one that is not an https URL is an error naming its source and the fix. */
export function parseServerUrl(server: string, sources: TargetSources = {}): URL {
  const s = sources.server ?? SERVER_DEFAULT;
  let url: URL | undefined;
  try {
    url = new URL(server);
  } catch {
    // not a URL at all
  }
  // "localhost:3080" parses as a URL of scheme "localhost:"; a person meant a host and port.
  if (!url || !server.includes("//")) {
    const example = /^[\w.-]+(:\d+)?$/.test(server) ? `https://${server}` : "https://discovery.example.com:3080";
    throw new Error(`${JSON.stringify(server)} ${origin(s)} is not a URL; ${s.fix} (an https URL such as ${example})`);
  }
  if (url.protocol !== "https:")
    throw new Error(
      `${server} ${origin(s)} is not an https URL, and the runtime serves https only; ${s.fix} (https://${url.host})`,
    );
  return url;
}

/** Node's TLS verification codes for a certificate no trusted CA signed. */
const UNTRUSTED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

/** Code of the error a pin mismatch raises, so it is told apart from other TLS failures. */
export const PIN_MISMATCH = "ERR_DISCOVERY_PIN_MISMATCH";

/** An error for a server key that is not the pinned one. */
export function pinMismatch(pin: string, actual: string): Error {
  return Object.assign(new Error(`the server's key is ${actual}, not ${pin}`), { code: PIN_MISMATCH });
}

/**
 * Explains a failed connection to `url`: the cause in words, the setting at fault with its source, and the fix.
 * `err` is what Node's https or tls module raised.
 */
export function connectError(err: NodeJS.ErrnoException, url: URL, sources: TargetSources = {}): Error {
  const server = sources.server ?? SERVER_DEFAULT;
  const where = `${url.origin} ${origin(server)}`;
  const code = err.code ?? "";
  // Node joins the attempts at each address of a name (localhost: ::1, 127.0.0.1) in an AggregateError without text.
  const inner = (err as unknown as { errors?: Error[] }).errors?.[0];
  const reason = err.message || inner?.message || code;
  let message: string;
  if (code === "ECONNREFUSED")
    message =
      `cannot reach ${where}: connection refused, nothing listens on port ${url.port || 443} of ${url.hostname}; ` +
      `start the runtime (discovery serve --config FILE) or, if it runs elsewhere, ${server.fix}`;
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    message = `cannot reach ${where}: the host name ${url.hostname} does not resolve; check it, then ${server.fix}`;
  else if (code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ENETUNREACH")
    message = `cannot reach ${where}: ${reason}; check the host and port and any firewall between, or ${server.fix}`;
  else if (code === "EPROTO" || /wrong version number|packet length too long/.test(reason))
    message =
      `cannot reach ${where}: what listens there does not speak TLS (${reason.split("\n")[0]}); ` +
      `is it the runtime's https port? ${capitalize(server.fix)}`;
  else if (UNTRUSTED.has(code)) {
    const ca = sources.ca ?? CA_DEFAULT;
    message = `${where} presents a certificate not signed by ${ca.from}: ${reason}; ${ca.fix}`;
  } else if (code === "CERT_HAS_EXPIRED")
    message = `${where} presents an expired certificate; renew the runtime's tls.cert_file and restart it`;
  else if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    message =
      `${where} presents a certificate for other names (${reason}); use a URL with a name the certificate ` +
      `carries (${server.fix}), or give the runtime a certificate for ${url.hostname}`;
  else if (code === PIN_MISMATCH) {
    const pin = sources.pin ?? PIN_DEFAULT;
    message = `${where}: ${reason} ${origin(pin)}; this is another server or the runtime's key changed: ${pin.fix}`;
  } else message = `cannot reach ${where}: ${reason}`;
  return Object.assign(new Error(message), { code: code || undefined });
}

/** The answer to a request the runtime refused for its admin token (401), with the token's source and fix. */
export function adminTokenRefused(url: string, serverMessage: string, sources: TargetSources = {}): string {
  const token = sources.adminToken ?? TOKEN_DEFAULT;
  return `${new URL(url).origin} refused the admin token from ${token.from}: ${serverMessage} (401); ${token.fix}`;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
