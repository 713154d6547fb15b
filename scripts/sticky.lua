-- sticky.lua: keep every activity of a workflow on the same worker while it
-- is a candidate (rendezvous hashing on the workflow id). When that worker
-- leaves or is excluded, only its workflows move, each to its next-highest
-- score. Use it when workers keep per-workflow caches or sessions warm.
function route(request, candidates, excluded)
  return dispatch.rendezvous(candidates, request.workflow_id)
end
