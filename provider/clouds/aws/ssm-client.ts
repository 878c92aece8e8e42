/** SSM clients per account and region, and the one way SSM calls are retried. */
import { SSMClient } from "@aws-sdk/client-ssm";
import { withRetries } from "../../util/retry";

/** Credentials for one account, e.g. from sts:AssumeRole. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When they stop working; they are fetched again shortly before. */
  expiration?: Date;
}

/** How SSM clients are made for each account and region. */
export interface SsmClientOptions {
  /** Credentials for an account and region; default: the SDK's chain (environment, profile, instance role). */
  credentials?: (account: string, region: string) => Promise<AwsCredentials>;
  /** SSM endpoint URL (tests, sandboxes); default: AWS_ENDPOINT_URL_SSM / AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
}

/** How SSM calls are retried when SSM answers "later" (throttling, 5xx). */
export interface SsmRetry {
  attempts?: number;
  baseDelayMs?: number;
  /** Told before each retry (the pass counts them for /metrics). */
  onRetry?: () => void;
}

const THROTTLED = /^(Throttling(Exception)?|RequestLimitExceeded|TooManyRequestsException|TooManyUpdates)$/;

/** The error code of an SSM SDK error (its name). */
export const errName = (e: unknown) => (e as { name?: string }).name ?? "Error";
/** The message of an SDK error. */
export const errMessage = (e: unknown) => (e as { message?: string }).message ?? String(e);

/** Whether SSM throttled the call: the request was refused, so nothing it asked for happened. */
export function isThrottledSsm(e: unknown): boolean {
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
  return THROTTLED.test(errName(e)) || status === 429;
}

/** Whether SSM answered "later": throttled, or a server-side error. */
function retryableSsmError(e: unknown): boolean {
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
  return isThrottledSsm(e) || status >= 500;
}

/**
 * One SSM call, retried with full jitter while SSM answers "later". The SDK's own retries are off (maxAttempts 1,
 * see ssmClient) so throttling backs off here, once. A call that must not run twice (SendCommand) passes
 * `onlyThrottling`: a server error may come after SSM acted, so it is not retried blindly.
 */
export function ssmCall<T>(retry: SsmRetry, fn: () => Promise<T>, onlyThrottling = false): Promise<T> {
  return withRetries(() => fn(), {
    maxAttempts: retry.attempts ?? 6,
    baseMs: retry.baseDelayMs ?? 250,
    capMs: 20_000,
    isRetryable: onlyThrottling ? isThrottledSsm : retryableSsmError,
    onRetry: () => retry.onRetry?.(),
  });
}

/**
 * An SSM client for one account and region, and its credentials provider (undefined: the SDK's default chain),
 * which the caller calls first so a failure to get credentials is told apart from SSM's answers.
 */
export function ssmClient(opts: SsmClientOptions | undefined, account: string, region: string) {
  const get = opts?.credentials;
  let cached: AwsCredentials | undefined;
  // Assumed-role credentials expire within the hour; refresh a minute early so a long poll keeps working.
  const credentials = get
    ? async () => {
        if (!cached || (cached.expiration && cached.expiration.getTime() - Date.now() < 60_000))
          cached = await get(account, region);
        return cached;
      }
    : undefined;
  const client = new SSMClient({
    region,
    maxAttempts: 1,
    ...(credentials ? { credentials } : {}),
    ...(opts?.endpoint ? { endpoint: opts.endpoint } : {}),
  });
  return { client, credentials };
}
