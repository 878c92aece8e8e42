/** Why a join was refused: a stable code for tests and audit, the HTTP status, and a reason a person can act on. */
export class JoinRefusal extends Error {
  /** Builds a refusal; `status` is 400 for malformed requests, 403 for denied ones, 429 for rate limits. */
  constructor(
    /** Stable machine-readable code, e.g. `iid_signature_invalid`. */
    public readonly code: string,
    /** The reason shown to the caller and written to the audit log. */
    public readonly reason: string,
    /** HTTP status of the refusal. */
    public readonly status: 400 | 403 | 414 | 429 = 403,
  ) {
    super(reason);
    this.name = "JoinRefusal";
  }
}
