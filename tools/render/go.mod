module github.com/b24hub/b24hub/tools/render

go 1.26.4

require (
	github.com/b24hub/b24hub/libs/svcdecl v0.0.0-00010101000000-000000000000
	golang.org/x/mod v0.41.0
)

replace github.com/b24hub/b24hub/libs/svcdecl => ../../libs/svcdecl
