-- p2c_ewma.lua: power of two choices by observed latency, as Finagle and
-- Linkerd balance. Among the candidates with a free slot, draw two at random
-- and take the one with the lower latency_peak_ewma * (in_flight + 1): a slow
-- worker gets less work, and one that stopped getting any is tried again as
-- its peak decays. A worker nothing was observed of yet counts at the mean
-- of the others. The draw is seeded by conversation id and attempt, so a
-- replay makes the same choice. nil when no candidate has a free slot: the
-- activity waits in the backlog.
function route(request, candidates, excluded)
  local free = {}
  for _, w in ipairs(candidates) do
    if w.available > 0 then free[#free + 1] = w end
  end
  return dispatch.p2c_ewma(free)
end
