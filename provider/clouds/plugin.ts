/**
 * The one interface a cloud implements (SPIRE's plugin catalog, Teleport's per-cloud watcher and installer): what
 * enrollment, the join service and the inventory need of it. provider/clouds/index.ts lists one per cloud.
 */
import type { CloudEnrollment, FailureClass } from "../enroll/clouds";
import type { JoinMethodDefinition } from "../join/methods";
import type { EventsSection, Token } from "../model";
import type { EventQueue } from "../enroll/events";

/** How a node that joined as one of the cloud's instances says which instance it is, and what it is named. */
export interface NodeIdentity {
  /** The attested label holding the instance's account: AWS account id, GCP project id, Azure subscription id. */
  accountLabel: string;
  /** The attested label holding its region (AWS, Azure) or zone (GCP). */
  regionLabel: string;
  /**
   * The name an instance joins as; fetch and attest both name it so, which is how a pass sees it joined. `region`
   * is the region (or zone) label's value, for clouds whose names carry it (GCP: `<project>-<zone>-<id>`).
   */
  nodeName(account: string, instanceId: string, region?: string): string;
}

/** What the node side of a join method gets: the server's challenge (methods that need one) and CLI options. */
export interface NodeJoinContext {
  challenge?: string;
  /** `discovery join --sts-endpoint` (iam). */
  stsEndpoint?: string;
  /** The runtime's cluster name (`/webapi/ping`), asked only by methods that need it (gcp: the token's audience). */
  clusterName?: () => Promise<string>;
}

/** Why a token cannot admit an instance, and what to change: both name the token and the account. */
export interface AllowProblem {
  reason: string;
  fix: string;
}

/** A join method of a cloud: the runtime's verifier, and the node's side that gathers the proof. */
export interface CloudJoinMethod extends JoinMethodDefinition {
  /** The request fields that prove this machine's identity, run by `discovery join` on the node. */
  nodeFields(ctx: NodeJoinContext): Promise<Record<string, unknown>>;
  /**
   * Checked by a pass before installing: why no allow rule of `token` can admit an instance of this account
   * (project, subscription) and region (zone), or undefined when one may. Only what a discovered instance shows is
   * checked; a rule that depends on what only the join proves (a role ARN, an organization, a service account)
   * may admit it.
   */
  allowProblem?(token: Token, instance: { account: string; region: string }): AllowProblem | undefined;
}

/** A cloud: its fetcher and installer, the join methods it attests, and how its nodes are named and labelled. */
export interface CloudPlugin<M = unknown> {
  /** Fetch, install, existence checks and the failure classes the installer reports (all of them). */
  enrollment: CloudEnrollment<M> & { failureClasses: Record<string, FailureClass> };
  /** The join methods that prove an instance of this cloud, by method name (`iam`, `ec2`, `gcp`, ...). */
  joinMethods: Record<string, CloudJoinMethod>;
  identity: NodeIdentity;
  /** The state-change event queues `discovery_service.events` names for this cloud; absent: no events. */
  eventQueues?(events: EventsSection): EventQueue[];
  /** The task issue type and fix of a failed scan of one scope; undefined (or absent) for `fetch-failure`. */
  scopeProblem?(e: { code: string; message: string }): { issueType: string; fix: string } | undefined;
}
