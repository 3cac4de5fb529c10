module github.com/b24hub/b24hub/libs/fakeportal

go 1.26.4

require github.com/b24hub/b24hub/libs/b24event v0.0.0-00010101000000-000000000000

replace github.com/b24hub/b24hub/libs/b24event => ../b24event
