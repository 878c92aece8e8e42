/**
 * Region names checked against the known lists: a name the cloud cannot have is refused with the name meant, a
 * well-formed name the list lacks is accepted with a warning, and the AWS list matches the AWS SDK's partitions.
 */
import { partition } from "@aws-sdk/core/client";
import {
  AWS_PARTITION_REGIONS,
  AWS_REGIONS,
  checkAwsRegion,
  checkAzureRegion,
  checkGcpLocation,
  formatPath,
  GCP_REGIONS,
  parseDocuments,
} from "../../provider/model";
import { STS_REGIONS } from "../../provider/clouds/aws/attest-iam";
import { problemsOf } from "../fixtures/problems";

describe("AWS regions", () => {
  it.each(AWS_REGIONS)("knows %s as the AWS SDK does, in the same partition", (region) => {
    const [id] = Object.entries(AWS_PARTITION_REGIONS).find(([, list]) => list.includes(region))!;
    const p = partition(region) as { name: string; description?: string };
    expect([p.name, typeof p.description]).toEqual([id, "string"]);
    expect(checkAwsRegion(region)).toEqual({});
  });

  it.each([
    ["us-east-9", '"us-east-9" is not an AWS region: us-east regions are numbered 1 to 2; did you mean "us-east-1"?'],
    ["us-east-0", '"us-east-0" is not an AWS region: us-east regions are numbered 1 to 2; did you mean "us-east-1"?'],
    ["us-east-01", '"us-east-01" is not an AWS region: us-east regions are numbered 1 to 2; did you mean "us-east-1"?'],
    [
      "us-gov-west-3",
      '"us-gov-west-3" is not an AWS region: us-gov-west has region 1 only; did you mean "us-gov-west-1"?',
    ],
    [
      "us-eats-1",
      '"us-eats-1" is not an AWS region: "eats" is not a direction AWS names regions by; did you mean "us-east-1"?',
    ],
    [
      "eu-centrl-1",
      '"eu-centrl-1" is not an AWS region: "centrl" is not a direction AWS names regions by; did you mean "eu-central-1"?',
    ],
  ])("refuses the typo %s with the name meant", (region, error) => {
    expect(checkAwsRegion(region)).toEqual({ error });
  });

  it.each([
    ["ap-southeast-8", ': check it is not a typo of "ap-southeast-1"'],
    ["us-east-3", ': check it is not a typo of "us-east-1"'],
    ["ap-southwest-1", ': check it is not a typo of "ap-southeast-1"'],
    ["nz-north-1", ': check it is not a typo of "eu-north-1"'],
    ["us-gov-west-2", ': check it is not a typo of "us-gov-west-1"'],
  ])("accepts %s, new in the next number or a new area, with a warning", (region, tail) => {
    expect(checkAwsRegion(region)).toEqual({
      warning: `"${region}" is not an AWS region this version knows; it is used as written in case AWS opened it recently${tail}`,
    });
  });

  it("allows STS calls to every region of the aws and aws-us-gov partitions, and no other", () => {
    expect(STS_REGIONS).toEqual([...AWS_PARTITION_REGIONS.aws, ...AWS_PARTITION_REGIONS["aws-us-gov"]]);
    expect(STS_REGIONS).not.toContain("cn-north-1");
  });
});

describe("GCP and Azure locations", () => {
  it.each(GCP_REGIONS)("knows %s and its zones", (region) => {
    expect([checkGcpLocation(region), checkGcpLocation(`${region}-b`)]).toEqual([{}, {}]);
  });

  it.each([
    [
      "us-centrl1",
      '"us-centrl1" is not a GCP region: "centrl" is not a direction GCP names regions by; did you mean "us-central1"?',
    ],
    [
      "eurpe-west1-b",
      '"eurpe-west1-b" is not a GCP zone: "eurpe" is not an area GCP names regions by; did you mean "europe-west1-b"?',
    ],
  ])("refuses the typo %s with the name meant", (location, error) => {
    expect(checkGcpLocation(location)).toEqual({ error });
  });

  it.each([
    ["europe-west13", "region", ': check it is not a typo of "europe-west1"'],
    ["us-east7-a", "zone", ': check it is not a typo of "us-east1-a"'],
    ["antarctica-south1", "region", ""],
    ["l1", "region", ""],
  ])("accepts %s (GCP leaves gaps in its numbers) with a warning", (location, what, tail) => {
    expect(checkGcpLocation(location)).toEqual({
      warning: `"${location}" is not a GCP ${what} this version knows; it is used as written in case GCP opened it recently${tail}`,
    });
  });

  it("only warns about an Azure region it does not know: Azure's names do not tell a typo from a new region", () => {
    expect(checkAzureRegion("westeurope")).toEqual({});
    expect(checkAzureRegion("eastus3")).toEqual({
      warning:
        '"eastus3" is not an Azure region this version knows; it is used as written in case Azure opened it ' +
        'recently: check it is not a typo of "eastus"',
    });
  });
});

describe("region checks in documents", () => {
  const dc = (aws: string) =>
    `kind: discovery_config\nversion: v1\nmetadata: {name: d}\nspec:\n  discovery_group: g\n  aws: [{regions: ${aws}}]\n`;

  it("refuses each typo of a list at its index, and nothing for a wildcard", () => {
    expect(problemsOf(dc("[us-east-1, us-east-9, eu-wset-1]"))).toEqual([
      'spec.aws[0].regions[1]: "us-east-9" is not an AWS region: us-east regions are numbered 1 to 2; did you mean "us-east-1"?',
      'spec.aws[0].regions[2]: "eu-wset-1" is not an AWS region: "wset" is not a direction AWS names regions by; did you mean "eu-west-1"?',
    ]);
    expect(parseDocuments(dc('["*"]'))).toMatchObject({ problems: [], warnings: [] });
  });

  it("locates warnings at the region, and keeps the document valid", () => {
    const r = parseDocuments(dc("[us-east-1, ap-southeast-8]"), "d.yaml");
    expect(r.problems).toEqual([]);
    expect(r.resources).toHaveLength(1);
    expect(r.warnings.map((w) => [w.line, w.col, formatPath(w.path)])).toEqual([[6, 31, "spec.aws[0].regions[1]"]]);
  });

  it("checks a token's aws_regions and gcp locations too", () => {
    const token =
      "kind: token\nversion: v2\nmetadata: {name: t}\nspec:\n  roles: [Node]\n  join_method: ec2\n" +
      '  allow: [{aws_account: "123456789012", aws_regions: [us-wset-2]}]\n';
    expect(problemsOf(token)).toEqual([
      'spec.allow[0].aws_regions[0]: "us-wset-2" is not an AWS region: "wset" is not a direction AWS names regions by; did you mean "us-west-2"?',
    ]);
    const gcp =
      "kind: token\nversion: v2\nmetadata: {name: g}\nspec:\n  roles: [Node]\n  join_method: gcp\n" +
      "  gcp: {allow: [{project_ids: [p-1], locations: [us-central1, europe-west13]}]}\n";
    expect(parseDocuments(gcp).warnings.map((w) => formatPath(w.path))).toEqual(["spec.gcp.allow[0].locations[1]"]);
  });
});
