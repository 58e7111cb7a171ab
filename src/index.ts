/**
 * zbmd: Erlang/OTP-style actors and supervision for machine learning on Node.js.
 * The root entry point is the actor layer; other layers have their own subpaths
 * (`zbmd/supervision`, `zbmd/fault`, `zbmd/ml`, `zbmd/gpu`).
 */
export * from './actor/index.js';
