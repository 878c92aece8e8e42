/** The resource model: parse, validate, apply defaults, and write YAML or JSON. */
export * from "./common";
export * from "./case";
export * from "./token";
export * from "./installer";
export * from "./discovery-config";
export * from "./events";
export * from "./document";
export * from "./sdk-problems";
export * from "./regions";
export { matcherWarnings, resourceWarnings } from "./warnings";
export { knownFieldsAt, zodProblems } from "./problems";
