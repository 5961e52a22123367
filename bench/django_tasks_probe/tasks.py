import time

from django_tasks import task


@task()
def noop():
    return None


@task()
def slow():
    time.sleep(60)
