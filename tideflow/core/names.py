"""Names every Tideflow component agrees on: API group and version, kinds, plurals, labels, condition types.

Import these instead of spelling the strings: the CRDs in ``crds/`` are generated with the same constants,
so a typo here cannot drift from what the API server serves.
"""

from typing import Final

GROUP: Final = "tideflow.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "tideflow.io/v1alpha1"  # GROUP/VERSION, spelled out so that it types as a literal
CATEGORY: Final = "tideflow"
"""The ``kubectl get tideflow`` category both resources belong to."""

WORKFLOW_KIND: Final = "Workflow"
WORKFLOW_LIST_KIND: Final = "WorkflowList"
WORKFLOW_PLURAL: Final = "workflows"
WORKFLOW_SINGULAR: Final = "workflow"
WORKFLOW_SHORT_NAME: Final = "wf"
WORKFLOW_CRD_NAME: Final = f"{WORKFLOW_PLURAL}.{GROUP}"

WORKFLOWRUN_KIND: Final = "WorkflowRun"
WORKFLOWRUN_LIST_KIND: Final = "WorkflowRunList"
WORKFLOWRUN_PLURAL: Final = "workflowruns"
WORKFLOWRUN_SINGULAR: Final = "workflowrun"
WORKFLOWRUN_SHORT_NAME: Final = "wfrun"
WORKFLOWRUN_CRD_NAME: Final = f"{WORKFLOWRUN_PLURAL}.{GROUP}"

# Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
PART_OF: Final = "tideflow"
"""Value of ``app.kubernetes.io/part-of`` on everything Tideflow creates, and on the examples."""

# Tideflow's own labels.
LABEL_WORKFLOW: Final = f"{GROUP}/workflow"
"""Name of the Workflow an object belongs to: on each WorkflowRun and on the runtime's ConfigMap,
Deployment, Service and pods. Label selectors on it are how runs of one workflow are listed (a Workflow's
name is at most 63 characters, so it is always a valid label value)."""
LABEL_APP_ID: Final = f"{GROUP}/app-id"
"""Ties a Workflow to an application (the API's ``appId``; ``GET /api/v1/workflows/discover?appId=``)."""
LABEL_TRIGGER_TYPE: Final = f"{GROUP}/trigger-type"
"""Trigger type of a WorkflowRun (the value of ``spec.triggerType``), for selecting runs by trigger."""

# Condition types written to ``status.conditions`` (Kubernetes metav1.Condition convention).
CONDITION_READY: Final = "Ready"
"""Workflow: the runtime is deployed and ready to accept triggers (the ``Ready`` printer column)."""
CONDITION_VALID: Final = "Valid"
"""Workflow: the definition passed the operator's checks; ``False`` with the issues in ``status.errors``."""
CONDITION_SCHEDULED: Final = "Scheduled"
"""Workflow: the schedule is active (True) or why it is not (Manual, NotActive, NotDeployed, Invalid)."""
ANNOTATION_CANCEL: Final = f"{GROUP}/cancel-requested"
"""On a WorkflowRun: asks whoever holds it to cancel it; the value is the reason (``"true"``: none given).
Set by the operator (concurrencyPolicy Replace) and the API (a cancel request)."""
