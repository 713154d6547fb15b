module github.com/aion-dispatch/dispatch

go 1.26
