package workflows

import (
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The search attributes every operation keeps current, so the Web UI's list
// filters by them (VulcanState="awaiting-operator", VulcanBackupID="...").
var (
	SearchOperation = temporal.NewSearchAttributeKeyKeyword("VulcanOperation")
	SearchBackupID  = temporal.NewSearchAttributeKeyKeyword("VulcanBackupID")
	SearchStep      = temporal.NewSearchAttributeKeyKeyword("VulcanStep")
	SearchState     = temporal.NewSearchAttributeKeyKeyword("VulcanState")
	SearchHost      = temporal.NewSearchAttributeKeyKeyword("VulcanHost")
)

// SearchAttributes lists them, for registration on a namespace (all Keyword).
var SearchAttributes = []temporal.SearchAttributeKeyKeyword{SearchOperation, SearchBackupID, SearchStep, SearchState, SearchHost}

// publisher upserts an operation's search attributes when its progress
// changes, where the namespace has them (Grant.SearchAttributes).
type publisher struct {
	grant Grant
	last  string
}

// publish records p's operation, backup, step and state, if they changed.
func (pb *publisher) publish(ctx workflow.Context, p *Progress) {
	if pb == nil || !pb.grant.SearchAttributes {
		return
	}
	state := strings.ReplaceAll(p.State, " ", "-")
	key := strings.Join([]string{p.Operation, p.BackupID, p.StepName, state}, "\x00")
	if key == pb.last {
		return
	}
	pb.last = key
	updates := []temporal.SearchAttributeUpdate{
		SearchOperation.ValueSet(p.Operation), SearchStep.ValueSet(p.StepName),
		SearchState.ValueSet(state), SearchHost.ValueSet(pb.grant.Host),
	}
	if p.BackupID != "" {
		updates = append(updates, SearchBackupID.ValueSet(p.BackupID))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("updating the search attributes failed", "error", err)
	}
}
