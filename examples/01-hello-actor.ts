/**
 * Example 1 (design book ch. 10): an echo actor. Casts are fire-and-forget; a call waits for
 * the reply (here at most 1,000 ms). Run: `node dist/examples/01-hello-actor.js`.
 */
import { ActorSystem, castTo, type GenServer, reply, startGenServer } from 'zbmd';

type EchoCast = { readonly text: string };
type EchoCall = 'get_reply';

const Echo: GenServer<string> = {
  init: () => '',
  handleCast: (message: EchoCast) => message.text, // remember the last text
  handleCall: (_request: EchoCall, _from, last) => reply(last, last),
};

export async function main(write: (line: string) => void = console.log): Promise<string> {
  const system = new ActorSystem();
  try {
    const echo = await startGenServer(system, Echo, undefined);
    castTo(system, echo, { text: 'Hello, Actor!' } satisfies EchoCast);
    const answer = await system.call<string>(echo, 'get_reply' satisfies EchoCall, 1000);
    write(`Reply: ${answer}`);
    return answer;
  } finally {
    system.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
