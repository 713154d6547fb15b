// Package router chooses workers for the engine: routing policies written in
// Go, and the helpers that scripted routers share with them.
package router
