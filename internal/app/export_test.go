package app

// Hooks for the multi-process tests in package app_test (replicas_test.go,
// faults_test.go): they run `wxgate serve` child processes exactly as the
// benchmark does.

// Replica is a `wxgate serve` child process (see cluster.go).
type Replica = replica

// StartReplica runs exe with args and exactly env and waits until it listens.
var StartReplica = startReplica

// SimHost is the simulator on a loopback listener with its push relay (see simhost.go).
type SimHost = simHost

// StartSimHost starts a simulator whose pushes are relayed to the gateway set with Relay.
var StartSimHost = startSimHost
