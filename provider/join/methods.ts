import type { Token } from "../model";
import type { ChallengeRecord } from "../runtime/store/types";
import type { ParsedPublicKey } from "../ssh";

/** What an attestor gets besides the request body. */
export interface AttestContext {
  /** The validated token named by the request, whose join_method is this method. */
  token: Token;
  /** Name of the token (for token-method tokens, its hash). */
  tokenName: string;
  now: Date;
  /** The runtime's cluster name (the audience of identity tokens). */
  clusterName: string;
  /** The consumed challenge, for methods that require one. */
  challenge?: ChallengeRecord;
  /** The node's host key, already decoded and checked. */
  hostKey: ParsedPublicKey;
  /** Join settings of the runtime config. */
  settings: JoinSettings;
}

/** Join settings of the runtime config, as attestors and request checks see them. */
export interface JoinSettings {
  aws: {
    extraCaPems: string[];
    stsEndpoint: string;
    /** Where discovery found an instance (its enrollment record), for iam joins, which STS does not place. */
    enrollmentRegion?: (account: string, instanceId: string) => Promise<string | undefined>;
  };
  gcp: { issuer: string; jwksUrl: string };
  /** `join.azure`: PEM CAs trusted beside Azure's pinned roots (`extra_ca_certs`), and Entra ID's JWKS URL. */
  azure: { extraCaPems: string[]; jwksUrl: string };
}

/** Who a verified node is. */
export interface Attested {
  /** Unique node name (one join per name). */
  nodeName: string;
  labels: Record<string, string>;
  /** Names and addresses for the host certificate. */
  principals: string[];
}

/** Verifies a join request of one method; throws JoinRefusal on any failed check. */
export type Attestor = (body: Record<string, unknown>, ctx: AttestContext) => Promise<Attested>;

/**
 * Checks the method's own request fields without any I/O: the service calls it before it loads the token,
 * consumes a challenge or lets the attestor call a cloud, so a malformed request costs nothing and burns nothing.
 * Throws JoinRefusal (400 for malformed fields).
 */
export type JoinRequestCheck = (body: Record<string, unknown>, settings: JoinSettings, now: Date) => void;

/** A join method as a cloud registers it. */
export interface JoinMethodDefinition {
  attest: Attestor;
  /** Static checks of the request, run before anything is looked up, consumed or called. */
  validate?: JoinRequestCheck;
  /** The method needs a server challenge (`POST /v1/join/challenge`) first. */
  needsChallenge: boolean;
}
