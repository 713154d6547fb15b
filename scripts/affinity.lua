-- affinity.lua: prefer workers tagged with the region the activity asks for.
-- The region comes from the input JSON ({"region": "eu", ...}); the least
-- loaded worker carrying that tag wins. With no region, or no worker tagged
-- for it, fall back to the least loaded of all: locality is a preference here,
-- not a requirement. Use it for data residency hints or cache locality.
-- An input that is not JSON has no region: pcall catches json_decode's error.
function route(request, candidates, excluded)
  local region
  if request.input_content_type == "application/json" then
    local ok, input = pcall(dispatch.json_decode, request.input)
    if ok and type(input) == "table" then region = input.region end
  end
  if type(region) == "string" then
    local local_workers = dispatch.with_tag(candidates, region)
    if #local_workers > 0 then
      return dispatch.least_loaded(local_workers)
    end
  end
  return dispatch.least_loaded(candidates)
end
