module github.com/b24hub/b24hub/libs/svcdecl

go 1.26.4
