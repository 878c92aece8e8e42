/** Small pieces the fetchers share (EC2, the organization walk, GCE): scope errors, a concurrency limit, pagination, sorting. */
import type { FetchResult } from "../../enroll/types";
import { awsErrorCode } from "./rate-limits";

/** A refusal of our own (not an AWS error) that ends one scope, with a stable code. */
export class ScopeFailure extends Error {
  /** e.g. `OrganizationMismatch`. */
  readonly code: string;

  /** A failure with a stable code and a sentence saying what to do. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "ScopeFailure";
    this.code = code;
  }
}

const CODELESS = new Set(["Error", "SyntaxError", "TypeError"]);

/**
 * The `{code, message}` a scope report shows: AWS's error code when AWS answered, the socket error code (e.g.
 * ECONNREFUSED) when it could not be reached, and always what we were doing, since AWS's own message seldom says.
 */
export function scopeError(err: unknown, doing: string): { code: string; message: string } {
  if (err instanceof ScopeFailure) return { code: err.code, message: err.message };
  const e = err as { $metadata?: { httpStatusCode?: number }; code?: unknown; message?: unknown } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  let code = awsErrorCode(err);
  // An answer the SDK could not parse (an HTML 404 from a proxy, say) has only its status to go by.
  if (CODELESS.has(code)) code = status !== undefined ? `Http${status}` : typeof e?.code === "string" ? e.code : code;
  const said = String(e?.message ?? err)
    .replace(/^AWS SDK error wrapper for /, "")
    .split("\n")[0]
    .slice(0, 300);
  return { code, message: `${doing}: ${said}` };
}

/** Every item of a paginated AWS list, fetching pages one after another until no NextToken comes back. */
export async function collectPages<T>(
  page: (token: string | undefined) => Promise<{ items?: T[]; next?: string }>,
): Promise<T[]> {
  const items: T[] = [];
  const seen = new Set<string>();
  let token: string | undefined;
  do {
    const out = await page(token);
    items.push(...(out.items ?? []));
    token = out.next || undefined;
    // A token seen before would loop forever; no AWS API does that, but a stub or a proxy might.
    if (token !== undefined && seen.has(token)) break;
    if (token !== undefined) seen.add(token);
  } while (token !== undefined);
  return items;
}

/** Sorts a fetch's scopes and candidates in place by account, region (and instance id), so output is stable. */
export function sortFetchResult(r: FetchResult): void {
  r.scopes.sort((a, b) => a.account.localeCompare(b.account) || a.region.localeCompare(b.region));
  r.candidates.sort(
    (a, b) =>
      a.account.localeCompare(b.account) ||
      a.region.localeCompare(b.region) ||
      a.instanceId.localeCompare(b.instanceId),
  );
}
