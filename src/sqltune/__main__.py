from sqltune.cli import main

main()
