package main

import (
	"testing"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// A worker stopped by SIGTERM (docker stop, systemctl stop) lets running
// activities finish or heartbeat before it cancels them, within the grace
// period a container gets (stop_grace_period: 20s in docker-compose.yml)
// and before the heartbeat timeout would give the step to another worker.
func TestWorkerStopsGracefully(t *testing.T) {
	o := workerOptions()
	if o.WorkerStopTimeout <= 0 || o.WorkerStopTimeout >= workflows.HeartbeatTimeout {
		t.Fatalf("WorkerStopTimeout %v: want above zero and below the heartbeat timeout %v", o.WorkerStopTimeout, workflows.HeartbeatTimeout)
	}
	if o.MaxHeartbeatThrottleInterval != workflows.HeartbeatEvery {
		t.Fatalf("heartbeat throttle %v", o.MaxHeartbeatThrottleInterval)
	}
}
