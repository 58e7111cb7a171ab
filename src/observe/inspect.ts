/**
 * `getState(where, pid)`: the state of a running GenServer, as OTP's sys:get_state. The server
 * answers between two messages, through its mailbox, so the state is one it really had.
 */
import { getServerState, type Pid, type Where } from '../actor/index.js';

export function getState<State = unknown>(
  where: Where,
  pid: Pid | string,
  timeoutMs?: number,
): Promise<State> {
  return getServerState<State>(where, pid, timeoutMs);
}
