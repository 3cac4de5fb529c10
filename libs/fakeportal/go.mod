module github.com/b24hub/b24hub/libs/fakeportal

go 1.26.4

replace (
	github.com/b24hub/b24hub/libs => ..
	github.com/b24hub/b24hub/libs/natstest => ../natstest
	github.com/b24hub/b24hub/libs/pgtest => ../pgtest
	github.com/b24hub/b24hub/proto => ../../proto
)

require github.com/b24hub/b24hub/libs v0.0.0-00010101000000-000000000000
