import type { Pid } from './Pid.js';

/** The opaque handle a server replies to (`reply(from, value)`). */
export interface CallFrom {
  readonly caller: Pid | undefined;
}

/** The envelope a `call` puts in the server's mailbox. GenServer unwraps it. */
export class CallRequest {
  constructor(
    readonly request: unknown,
    readonly from: CallFrom,
  ) {}
}

/** A cast envelope in a server's mailbox (GenServer unwraps it); it crosses threads as itself. */
export class CastRequest {
  constructor(readonly request: unknown) {}
}

/** The system request for a server's state (OTP's sys:get_state); it crosses threads as itself. */
export class GetStateRequest {}
