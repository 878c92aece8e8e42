import type { Token } from "../model";
import type { ChallengeRecord } from "../runtime/store/types";

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
  /** Join settings of the runtime config. */
  settings: {
    aws: {
      extraCaPems: string[];
      stsEndpoint: string;
      /** Where discovery found an instance (its enrollment record), for iam joins, which STS does not place. */
      enrollmentRegion?: (account: string, instanceId: string) => Promise<string | undefined>;
    };
    gcp: { issuer: string; jwksUrl: string };
  };
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

/** A join method as a cloud registers it. */
export interface JoinMethodDefinition {
  attest: Attestor;
  /** The method needs a server challenge (`POST /v1/join/challenge`) first. */
  needsChallenge: boolean;
}

const registry = new Map<string, JoinMethodDefinition>();

/** Registers a join method; clouds call this for the methods they attest. */
export function registerJoinMethod(name: string, def: JoinMethodDefinition): void {
  registry.set(name, def);
}

/** The registered definition of a method, if any. */
export function joinMethod(name: string): JoinMethodDefinition | undefined {
  return registry.get(name);
}

/** Names of the registered methods. */
export function joinMethodNames(): string[] {
  return [...registry.keys()];
}
