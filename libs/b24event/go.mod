module github.com/b24hub/b24hub/libs/b24event

go 1.26.4
