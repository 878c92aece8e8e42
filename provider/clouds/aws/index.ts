/** AWS: registers the ec2 and iam join methods with the join service. */
import { JoinRefusal } from "../../join/errors";
import { registerJoinMethod } from "../../join/methods";
import { attestIam, OrganizationCache } from "./attest-iam";
import { organizationsDescribeAccount } from "./organizations";

const orgCache = new OrganizationCache();
let describeAccount: ReturnType<typeof organizationsDescribeAccount> | undefined;

registerJoinMethod("iam", {
  needsChallenge: true,
  attest: async (body, ctx) => {
    if (!ctx.challenge) throw new JoinRefusal("challenge_missing", "an iam join needs a challenge", 400);
    const a = await attestIam(body, {
      token: ctx.token,
      challenge: ctx.challenge.challenge,
      stsEndpoint: ctx.settings.aws.stsEndpoint,
      now: ctx.now,
      orgCache,
      describeAccount: (id) => (describeAccount ??= organizationsDescribeAccount())(id),
    });
    return { nodeName: a.nodeName, labels: a.labels, principals: a.principals };
  },
});
