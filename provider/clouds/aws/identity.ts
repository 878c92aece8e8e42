/** How an EC2 instance's node is named and labelled, by fetch and by both join methods alike. */
import type { NodeIdentity } from "../plugin";

/** `<account-id>-<instance-id>`: the name an EC2 instance joins as. */
export const ec2NodeName = (account: string, instanceId: string): string => `${account}-${instanceId}`;

/** The account and region labels an ec2 or iam join attests, and the node name. */
export const AWS_NODE_IDENTITY: NodeIdentity = {
  accountLabel: "discovery/account-id",
  regionLabel: "discovery/region",
  nodeName: ec2NodeName,
};
