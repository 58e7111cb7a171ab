%% The actor benchmarks of bench/actors.ts, written for Erlang/OTP, so that both run on the same
%% machine in the same benchmark run. Prints one JSON line.
-module(zbmd_bench).
-export([main/1]).

main(Quick) ->
    Scale = case Quick of true -> 10; false -> 1 end,
    Ring = ring(1000, 2000000 div Scale),
    PingPong = ping_pong(500000 div Scale),
    Spawn = spawn_many(1000000 div Scale),
    Skynet = skynet(case Quick of true -> 100000; false -> 1000000 end),
    io:format("{\"ring_msgs_per_sec\":~p,\"pingpong_ns_per_roundtrip\":~.1f,"
              "\"spawn_ns_per_actor\":~.1f,\"skynet_1m_ms\":~.1f,\"schedulers\":~p}~n",
              [round(Ring), PingPong, Spawn, Skynet, erlang:system_info(schedulers_online)]).

now_us() -> erlang:monotonic_time(microsecond).

%% ring: a token passed around `N` processes for `Hops` hops
ring(N, Hops) ->
    Self = self(),
    Nodes = [spawn(fun() -> receive {next, Next} -> ring_node(Next, Self) end end) || _ <- lists:seq(1, N)],
    [First | Rest] = Nodes,
    lists:foreach(fun({Node, Next}) -> Node ! {next, Next} end, lists:zip(Nodes, Rest ++ [First])),
    Start = now_us(),
    First ! Hops,
    receive ring_done -> ok end,
    Hops / ((now_us() - Start) / 1000000).

ring_node(Next, Main) ->
    receive
        0 -> Main ! ring_done, ring_node(Next, Main);
        Token -> Next ! Token - 1, ring_node(Next, Main)
    end.

ping_pong(RoundTrips) ->
    Self = self(),
    Pong = spawn(fun Loop() -> receive {From, N} -> From ! N, Loop() end end),
    Ping = spawn(fun() -> ping(Pong, 0, RoundTrips), Self ! ping_done end),
    Start = now_us(),
    Ping ! go,
    receive ping_done -> ok end,
    (now_us() - Start) * 1000 / RoundTrips.

ping(_Pong, N, N) -> ok;
ping(Pong, N, Max) ->
    receive go -> ok after 0 -> ok end,
    Pong ! {self(), N},
    receive N -> ping(Pong, N + 1, Max) end.

spawn_many(Count) ->
    Self = self(),
    Start = now_us(),
    [spawn(fun() -> Self ! exited end) || _ <- lists:seq(1, Count)],
    wait(Count),
    (now_us() - Start) * 1000 / Count.

wait(0) -> ok;
wait(N) -> receive exited -> wait(N - 1) end.

skynet(Leaves) ->
    Self = self(),
    Start = now_us(),
    spawn(fun() -> skynet_node(Self, 0, Leaves) end),
    receive Sum -> Sum = Leaves * (Leaves - 1) div 2 end,
    (now_us() - Start) / 1000.

skynet_node(Parent, Number, 1) -> Parent ! Number;
skynet_node(Parent, Number, Size) ->
    Self = self(),
    Child = Size div 10,
    [spawn(fun() -> skynet_node(Self, Number + I * Child, Child) end) || I <- lists:seq(0, 9)],
    Parent ! collect(10, 0).

collect(0, Sum) -> Sum;
collect(N, Sum) -> receive Value -> collect(N - 1, Sum + Value) end.
