/**
 * The one Compute Engine call a gcp join makes (`instances.get`), behind a small interface so unit tests fake it in
 * memory and the sandbox points the real client at a fake control plane through `GOOGLE_COMPUTE_ENDPOINT`.
 */
import { GcpClients, gcpErrorCode, gcpErrorMessage, googleClients } from "./clients";

/** What `instances.get` says about one VM, as the join checks it. */
export interface GcpInstance {
  /** The numeric instance id, as a decimal string. */
  id: string;
  name: string;
  /** `RUNNING`, `TERMINATED`, `STOPPING`, ... */
  status: string;
  /** RFC 3339, as the API returns it. */
  creationTimestamp: string;
  /** Emails of the service accounts attached to the VM. */
  serviceAccounts: string[];
}

/** The Compute call of a gcp join. */
export interface GcpInstances {
  /** The VM, or undefined when Compute does not know it. Other failures throw {@link GcpCallError}. */
  get(project: string, zone: string, instance: string): Promise<GcpInstance | undefined>;
}

/** A failed Compute call: the permission it needed, Google's status code and the first line of its message. */
export class GcpCallError extends Error {
  /** Wraps `cause`, the error of the call that needs `permission`. */
  constructor(
    /** The IAM permission of the failed call. */
    readonly permission: "compute.instances.get",
    /** `PERMISSION_DENIED`, `UNAVAILABLE`, ... or a socket error code. */
    readonly status: string,
    override readonly cause: unknown,
  ) {
    super(`${permission} failed: ${status}: ${gcpErrorMessage(cause)}`);
    this.name = "GcpCallError";
  }
}

/**
 * {@link GcpInstances} over the shared Google clients ({@link googleClients}): `@google-cloud/compute` over REST
 * with application default credentials, at the endpoint the environment names (Google's unless
 * `GOOGLE_COMPUTE_ENDPOINT` says otherwise). Nothing here trusts a token only the sandbox has.
 */
export function computeInstances(clients: GcpClients = googleClients()): GcpInstances & { close(): Promise<void> } {
  return {
    async get(project, zone, instance) {
      try {
        const [vm] = await clients.instances().get({ project, zone, instance });
        return {
          id: String(vm.id ?? ""),
          name: vm.name ?? "",
          status: String(vm.status ?? "UNKNOWN"),
          creationTimestamp: vm.creationTimestamp ?? "",
          serviceAccounts: (vm.serviceAccounts ?? []).map((s) => s.email ?? "").filter((e) => e !== ""),
        };
      } catch (err) {
        const status = gcpErrorCode(err);
        if (status === "NOT_FOUND") return undefined;
        throw new GcpCallError("compute.instances.get", status, err);
      }
    },
    close: () => clients.close(),
  };
}
