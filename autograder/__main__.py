from .cli import main

if __name__ == "__main__":  # grading workers are spawned: importing this module must not run the CLI
    raise SystemExit(main())
