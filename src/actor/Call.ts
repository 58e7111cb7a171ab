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
