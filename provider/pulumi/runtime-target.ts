import type { RuntimeTarget } from "../http/client";

/** What the engine sends for a value not known yet during preview. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** The runtime connection a runtime-backed resource's inputs and state hold. */
export interface RuntimeConnectionProps {
  /** The runtime's URL: the resource's own (or stack config's), else the DISCOVERY_SERVER it was created with. */
  server?: string;
  adminToken?: string;
  caCert?: string;
  /** `server` came from DISCOVERY_SERVER: later operations use it, and refuse while the variable names another. */
  __serverFromEnvironment?: boolean;
}

/** The environment variables the connection falls back to. */
export type ConnectionEnv = Partial<Record<"DISCOVERY_SERVER" | "DISCOVERY_ADMIN_TOKEN", string>>;

/** Whether two runtime URLs name the same runtime (host case, a trailing slash and a default port aside). */
export function sameServer(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const canonical = (u: string) => {
    try {
      const url = new URL(u);
      return url.origin + url.pathname.replace(/\/+$/, "");
    } catch {
      return u;
    }
  };
  return canonical(a) === canonical(b);
}

function movedAway(what: string, recorded: string, env: string): string {
  return (
    `${what} lives on the runtime ${recorded} (recorded in the stack's state when it was created, from ` +
    `DISCOVERY_SERVER), but DISCOVERY_SERVER is now ${env}: refusing to act on another runtime. Unset ` +
    `DISCOVERY_SERVER (the recorded runtime is used) or set it to ${recorded}; to move the resource, set server ` +
    `(or stack config discovery:server) to the new runtime and run up with DISCOVERY_SERVER unset`
  );
}

/**
 * At check: the runtime of the new inputs. The resource's own server (args or stack config) wins; else the one
 * recorded when DISCOVERY_SERVER supplied it (refused while the variable names another); else DISCOVERY_SERVER.
 */
export function resolveServer(
  what: string,
  olds: RuntimeConnectionProps,
  news: RuntimeConnectionProps,
  env: ConnectionEnv = process.env,
): { server: string; fromEnvironment: boolean } | { problem: string } {
  if (news.server) return { server: news.server, fromEnvironment: false };
  const recorded = olds.__serverFromEnvironment ? olds.server : undefined;
  const fromEnv = env.DISCOVERY_SERVER || undefined;
  if (recorded && fromEnv && !sameServer(recorded, fromEnv)) return { problem: movedAway(what, recorded, fromEnv) };
  const server = recorded ?? fromEnv;
  if (!server)
    return { problem: "no runtime: set server on the resource, stack config discovery:server, or DISCOVERY_SERVER" };
  return { server, fromEnvironment: true };
}

/**
 * For read, update and delete: the runtime the state records (refused when it came from DISCOVERY_SERVER and the
 * variable now names another runtime). State written before the server was recorded falls back to DISCOVERY_SERVER.
 * The admin token is never recorded unless given: the resource's own, else DISCOVERY_ADMIN_TOKEN.
 */
export function recordedTarget(
  what: string,
  props: RuntimeConnectionProps,
  env: ConnectionEnv = process.env,
): RuntimeTarget {
  const fromEnv = env.DISCOVERY_SERVER || undefined;
  let server = props.server;
  if (server && props.__serverFromEnvironment && fromEnv && !sameServer(server, fromEnv))
    throw new Error(movedAway(what, server, fromEnv));
  if (!server) {
    if (!fromEnv)
      throw new Error(
        `no runtime for ${what}: its state records none (it was written by an older version, which used ` +
          `DISCOVERY_SERVER); set DISCOVERY_SERVER to the runtime it was created on`,
      );
    server = fromEnv;
  }
  const adminToken = props.adminToken || env.DISCOVERY_ADMIN_TOKEN || undefined;
  if (!adminToken)
    throw new Error(
      `no admin token for the runtime ${server} (${what}): set adminToken on the resource, stack config ` +
        `discovery:adminToken (secret), or DISCOVERY_ADMIN_TOKEN`,
    );
  return { server, adminToken, ca: props.caCert || undefined };
}
