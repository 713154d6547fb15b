-- p2c.lua: power of two choices. Draw two candidates at random and take the
-- less loaded. Nearly as balanced as least loaded, and it does not send
-- every burst to the same momentarily idle worker, which matters when many
-- dispatchers route on slightly stale load. The draw is seeded by
-- conversation id and attempt, so a replay makes the same choice.
function route(request, candidates, excluded)
  return dispatch.p2c(candidates)
end
