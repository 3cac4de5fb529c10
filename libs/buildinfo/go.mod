module github.com/b24hub/b24hub/libs/buildinfo

go 1.26.4
