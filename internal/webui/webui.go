// Package webui builds links into the Temporal Web UI, for the starter's
// messages, the API's answers and the notifications.
package webui

import (
	"net/url"
	"strings"
)

// RunLink is the page of one workflow run in the Web UI at base ("" gives
// ""); an empty namespace is "default".
func RunLink(base, namespace, workflowID, runID string) string {
	if base == "" {
		return ""
	}
	if namespace == "" {
		namespace = "default"
	}
	return strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" +
		url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}
