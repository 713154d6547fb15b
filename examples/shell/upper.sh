#!/bin/sh
# A per-activity worker: dispatch runs this script once per activity, with
# the activity's input on stdin. What it writes to stdout is the output; a
# non-zero exit fails the activity with the end of what it wrote to stderr.
#
#   dispatch worker --channel default/text -- examples/shell/upper.sh
#
# The activity's metadata is in DISPATCH_WORKFLOW_ID, DISPATCH_ACTIVITY_TYPE,
# DISPATCH_TASK_QUEUE, DISPATCH_CONTENT_TYPE (and DISPATCH_START_TO_CLOSE_MS,
# DISPATCH_DEADLINE when set); see docs/workers.md.
set -eu
if [ "${DISPATCH_ACTIVITY_TYPE:-upper}" != upper ]; then
	echo "upper.sh: unknown activity type ${DISPATCH_ACTIVITY_TYPE}" >&2
	exit 2
fi
exec tr '[:lower:]' '[:upper:]'
