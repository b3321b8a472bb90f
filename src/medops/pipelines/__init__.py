"""Running the lifecycle from the project file: loading it, and the steps it declares."""

from medops.pipelines.project import PROJECT_FILE, LoadedProject, Project, ProjectError, find_project, load_project

__all__ = ["PROJECT_FILE", "LoadedProject", "Project", "ProjectError", "find_project", "load_project"]
