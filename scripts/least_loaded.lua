-- least_loaded.lua: send each activity to the candidate with the lowest load,
-- (in_flight + buffer_depth) / max_in_flight; ties go to the first in pool order.
-- Use it as the default for homogeneous workers. The loop below is what
-- dispatch.least_loaded(candidates) does in Go; it is written out as a
-- starting point for policies of your own.
function route(request, candidates, excluded)
  local best
  for _, c in ipairs(candidates) do
    if best == nil
      or (c.in_flight + c.buffer_depth) * math.max(best.max_in_flight, 1)
       < (best.in_flight + best.buffer_depth) * math.max(c.max_in_flight, 1) then
      best = c
    end
  end
  return best and best.id
end
