/**
 * The one interface a cloud implements (SPIRE's plugin catalog, Teleport's per-cloud watcher and installer): what
 * enrollment, the join service and the inventory need of it. provider/clouds/index.ts lists one per cloud.
 */
import type { CloudEnrollment, FailureClass } from "../enroll/clouds";
import type { JoinMethodDefinition } from "../join/methods";

/** How a node that joined as one of the cloud's instances says which instance it is, and what it is named. */
export interface NodeIdentity {
  /** The attested label holding the instance's account: AWS account id, GCP project id, Azure subscription id. */
  accountLabel: string;
  /** The attested label holding its region (AWS, Azure) or zone (GCP). */
  regionLabel: string;
  /** The name an instance joins as; fetch and attest both name it so, which is how a pass sees it joined. */
  nodeName(account: string, instanceId: string): string;
}

/** A cloud: its fetcher and installer, the join methods it attests, and how its nodes are named and labelled. */
export interface CloudPlugin<M = unknown> {
  /** Fetch, install, existence checks and the failure classes the installer reports (all of them). */
  enrollment: CloudEnrollment<M> & { failureClasses: Record<string, FailureClass> };
  /** The join methods that prove an instance of this cloud, by method name (`iam`, `ec2`, `gcp`, ...). */
  joinMethods: Record<string, JoinMethodDefinition>;
  identity: NodeIdentity;
}
