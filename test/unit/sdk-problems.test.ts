import { sdkMessage, sdkProblemText, sdkPropertyPath } from "../../provider/model";

describe("problems as a Pulumi program's author reads them", () => {
  it.each([
    [["spec", "allow", 0, "aws_account"], true, "allow[0].awsAccount"],
    [["spec", "allow", 0, "aws_account"], false, "spec.allow[0].awsAccount"],
    [["metadata", "name"], true, "name"],
    [["spec", "aws", 0, "tags", "team_name"], true, "aws[0].tags.team_name"],
    [["spec", "aws", 1, "install", "join_params", "token_name"], true, "aws[1].install.joinParams.tokenName"],
  ])("names %j as %s", (path, specAtTop, expected) => {
    expect(sdkPropertyPath(path, { specAtTop })).toBe(expected);
  });

  it.each([
    // Field names the message mentions are the program's camelCase ones.
    ["applies only to join_method ec2, not iam; remove it", "applies only to joinMethod ec2, not iam; remove it"],
    [
      "set either assume_role.role_arn or assume_role_arn, not both",
      "set either assumeRole.roleArn or assumeRoleArn, not both",
    ],
    // Values are left alone, paths included.
    ["must be an absolute path such as /etc/ssh/sshd_config", "must be an absolute path such as /etc/ssh/sshd_config"],
    ['unknown kind "discovery_configs"', 'unknown kind "discovery_configs"'],
    // YAML words and YAML advice become the program's.
    ["must be a mapping, not a string", "must be an object, not a string"],
    [
      'must be a 12-digit AWS account id such as "123456789012" (quote it in YAML so leading zeros are kept)',
      'must be a 12-digit AWS account id such as "123456789012" (pass it as a string: a number loses the leading zeros)',
    ],
  ])("words %j for code", (message, expected) => {
    expect(sdkMessage(message)).toBe(expected);
  });

  it("names a misspelt field as the program spelt it, with the suggestion in camelCase", () => {
    const problem = {
      path: ["spec", "aws", 0, "ssm", "documnet_name"],
      message: 'unknown field "documnet_name"; did you mean "document_name"?',
    };
    expect(sdkProblemText(problem, { specAtTop: true })).toBe(
      'aws[0].ssm.documnetName: unknown field "documnetName"; did you mean "documentName"?',
    );
  });
});
